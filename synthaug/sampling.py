"""``synthaug sample``: generated pairs to a plain folder a PairBank can read back."""
from __future__ import annotations

from pathlib import Path

from .io.images import write_json, write_png
from .pipelines.base import LABELS, Condition, create_generator
from .preview import save_grid


def sample_to_folder(generator, n: int, out, seed: int = 0, tumour_type: str = "mixed", box=None, steps=None,
                     scheduler=None, batch_size: int = 16, device: str = "cpu") -> Path:
    """Write ``images/pair_NNNNN.png``, ``masks/pair_NNNNN.png`` (0/1), ``pairs.json`` and ``preview.png``."""
    kwargs = {k: v for k, v in {"steps": steps, "scheduler": scheduler}.items() if v is not None}
    gen = generator if hasattr(generator, "sample") else create_generator(generator, device=device, **kwargs)
    labels = [LABELS[i % 2] if tumour_type == "mixed" else tumour_type for i in range(n)]
    use = gen.conditions
    conds = [Condition(label=l if "label" in use else None, box=box if "box" in use else None) for l in labels]
    pairs = gen.sample(n, seed=seed, conditions=conds, batch_size=batch_size, progress=True)
    out = Path(out)
    meta = {}
    for i, p in enumerate(pairs):
        name = f"pair_{i:05d}"
        write_png(out / "images" / f"{name}.png", p.image)
        write_png(out / "masks" / f"{name}.png", p.mask)
        meta[name] = {**p.meta, "checkpoint_hash": gen.checkpoint_hash()}
    write_json(out / "pairs.json", {"generator": gen.name, "pairs": meta})
    titles = [str(m.get("label") or "") for m in meta.values()]
    save_grid(out / "preview.png", [p.image for p in pairs], [p.mask for p in pairs], titles=titles)
    return out
