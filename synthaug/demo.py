"""``synthaug demo``: the main job on the bundled default, with no data of the user's.

No dataset may be shipped, so the demo's "real" cases are themselves pairs
from the shipped checkpoint: they are written as an nnU-Net raw folder, the
folder is expanded at the given ratio with the same generator (other seeds),
and a preview shows every base and synthetic case with its mask outline.
"""
from __future__ import annotations

from pathlib import Path

from .expand import expand
from .io.images import read_gray, read_mask
from .io.nnunet_raw import RawDataset
from .io.public_sets import write_raw_dataset
from .paths import DEFAULT_GENERATOR
from .pipelines.base import LABELS, Condition
from .pipelines.registry import create_generator
from .preview import save_grid
from .threads import use_threads

DEMO_ID, DEMO_NAME = 999, "SynthaugDemo"


def run_demo(out: str | Path, generator: str = DEFAULT_GENERATOR, n: int = 16, ratio: float = 0.25, seed: int = 0,
             steps: int | None = None, scheduler: str | None = None, device: str = "cpu", engine: str = "auto",
             threads: int | None = None) -> dict:
    out = Path(out)
    kwargs = {k: v for k, v in {"steps": steps, "scheduler": scheduler}.items() if v is not None}
    gen = create_generator(generator, device=device, engine=engine, threads=use_threads(threads), **kwargs)
    labels = [LABELS[i % 2] for i in range(n)]
    conds = [Condition(label=l if "label" in gen.conditions else None) for l in labels]
    pairs = gen.sample(n, seed=seed, conditions=conds, progress=True)
    cases = [{"case_id": f"DEMO_{i:04d}", "image": p.image, "mask": p.mask.astype(bool), "label": l,
              "source_name": f"{gen.name} seed {p.meta['seed']}", "split": "train"}
             for i, (p, l) in enumerate(zip(pairs, labels))]
    raw = write_raw_dataset(cases, out, DEMO_ID, DEMO_NAME, source=f"synthaug demo ({gen.name} checkpoint)")
    report = expand(raw, ratio=ratio, generator=str(gen.checkpoint_path), seed=seed + 1, device=device,
                    steps=steps, engine=engine, threads=threads)
    ds = RawDataset.open(raw)
    synthetic = {c for c in ds.case_ids() if not c.startswith("DEMO_")}  # every base case is DEMO_NNNN
    # every case, synthetic first: the preview is the demo's whole result, so none may be left out
    shown = [c for c in ds.case_ids() if c in synthetic] + [c for c in ds.case_ids() if c not in synthetic]
    preview = save_grid(out / "preview.png", [read_gray(ds.image_path(c)) for c in shown],
                        [read_mask(ds.label_path(c), threshold=0) for c in shown],
                        titles=[("synthetic " if c in synthetic else "") + c for c in shown], ncol=8)
    return {"raw_dataset": str(raw), "preview": str(preview), "generator": gen.name, **report}
