"""``synthaug sample`` (pairs, to a folder a PairBank reads back) and ``synthaug masks`` (SCMG masks)."""
from __future__ import annotations

from pathlib import Path

from .io.images import write_json, write_png
from .pipelines.base import LABELS, Condition, create_generator
from .preview import save_grid, save_mask_grid


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
    # one block of rows per tumour type (benign above malignant, like the BUS paper's Fig. 4)
    order = sorted(range(len(pairs)), key=lambda i: LABELS.index(titles[i]) if titles[i] in LABELS else len(LABELS))
    ncol = min(8, max(titles.count(t) for t in set(titles)))
    save_grid(out / "preview.png", [pairs[i].image for i in order], [pairs[i].mask for i in order],
              titles=[titles[i] for i in order], ncol=ncol)
    return out


def masks_to_folder(checkpoint, n: int, out, seed: int = 0, tumour_type: str | None = None, box=None,
                    device: str = "cpu") -> Path:
    """SCMG masks: ``masks/mask_NNNNN.png`` (0/1), ``masks.json`` (type and box of each) and ``preview.png``."""
    from .pipelines.scmg import ScmgMasks

    gen = ScmgMasks.from_pretrained(checkpoint, device=device)
    masks, conds = gen.sample(n, seed=seed, conditions=[Condition(tumour_type, box)] * n)
    out = Path(out)
    meta = {}
    for i, (mask, c) in enumerate(zip(masks, conds)):
        write_png(out / "masks" / f"mask_{i:05d}.png", mask)
        meta[f"mask_{i:05d}"] = c.to_dict()
    write_json(out / "masks.json", {"checkpoint": str(checkpoint), "seed": seed, "masks": meta})
    save_mask_grid(out / "preview.png", masks, [c.box for c in conds], titles=[c.label for c in conds])
    return out

