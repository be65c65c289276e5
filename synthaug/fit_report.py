"""What ``synthaug fit`` made: steps against the recipes, a quick quality check, a preview, a verdict.

A few pairs are sampled from the fitted generator with the conditions ``expand`` would ask for
(the raw folder's tumour types, lesion boxes and sizes) and compared with the folder's real
training cases on what a short fit gets wrong first (measured here: a fit at a tenth of the
recipes drew lesions twice too large that a real segmenter found a third of the time):

- mask area as a share of the image, against the real cases' at the same tumour types;
- masks touching the image border, against real ones;
- lesion contrast: whether the lesion is darker than the ring around it (hypoechoic, as nearly
  every real breast lesion is here);
- a judge segmenter's Dice on the pairs, when the folder's judge is already cached
  (``synthaug expand --gate-dice`` trains it once; this check never trains it).

The verdict is "too small a budget" when a part trained under MIN_RECIPE_SHARE of its recipe's
steps or a check falls outside its band; the bands are the measured gaps between the shipped
generator (usable) and a 56-minute fit (not usable), see docs/own-data.md.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage

SUMMARY_NAME = "fit_summary.json"
PREVIEW_NAME = "fit_preview.png"
CHECK_PAIRS = 16
MIN_RECIPE_SHARE = 0.5  # below this share of a recipe's steps no fit here made a usable generator
AREA_BAND = (0.6, 1.6)  # generated / real mean mask area (shipped bus: 1.16; 56-min fit: 2.2)
MAX_EXTRA_BORDER = 0.25  # share of masks touching the border beyond the real share
MIN_DARK_SHARE = 0.6  # share of generated lesions darker than their ring (real: nearly all)
MIN_JUDGE_DICE = 0.7  # judge Dice on generated pairs (shipped bus: 0.93; 56-min fit: 0.38)


def mask_stats(images, masks) -> dict:
    """Mean mask area (share of the image), share of masks touching the border, share of lesions darker than
    the 5-pixel ring around them."""
    areas, border, dark = [], [], []
    for image, mask in zip(images, masks):
        m = np.asarray(mask) > 0
        if not m.any():
            continue
        areas.append(m.mean())
        border.append(bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any()))
        ring = ndimage.binary_dilation(m, iterations=5) & ~m
        img = np.asarray(image, dtype=np.float64)
        dark.append(bool(ring.any() and img[m].mean() < img[ring].mean()))
    if not areas:
        return {"pairs": 0, "mask_area": 0.0, "touches_border": 0.0, "darker_than_ring": 0.0}
    return {"pairs": len(areas), "mask_area": round(float(np.mean(areas)), 4),
            "touches_border": round(float(np.mean(border)), 3), "darker_than_ring": round(float(np.mean(dark)), 3)}


def _real_cases(raw: Path):
    from .data.datasets import read_label_png
    from .io.images import read_gray
    from .io.manifest import Folder

    folder = Folder.load(raw)
    meta = folder.raw.metadata()
    for case in folder.real:
        yield (read_gray(folder.raw.image_path(case)), read_label_png(folder.raw.label_path(case)),
               (meta.get(case) or {}).get("label"))


def quality_check(raw: str | Path, checkpoint: str | Path, n: int = CHECK_PAIRS, seed: int = 0,
                  preview: str | Path | None = None) -> dict:
    """Sample ``n`` pairs from ``checkpoint`` as ``expand`` would for ``raw`` and compare them with ``raw``'s
    real training cases (see the module docstring); writes a preview grid to ``preview`` if given."""
    from .data.conditions import ConditionSampler, restrict
    from .gate import cached_judge, load_judge
    from .io.manifest import Folder
    from .pipelines.base import pair_seeds, sample_cases
    from .pipelines.registry import create_generator
    from .preview import save_grid

    raw = Path(raw)
    folder = Folder.load(raw)
    gen = create_generator(checkpoint)
    sampler = ConditionSampler.from_raw(folder.raw, folder.real)
    conds = {k: restrict(sampler.draw(pair_seeds(seed, 1, start=k)[0])[0], gen.conditions) for k in range(n)}
    pairs = sample_cases(gen, seed, range(n), conds.__getitem__)
    real = list(_real_cases(raw))
    labels = [conds[k].label for k in range(n)]
    # real area at the generated pairs' type mix: a type's real mean for each pair (all cases when untyped)
    by_type = {t: [m.mean() for _, m, lab in real if lab == t and m.any()] for t in set(labels)}
    everything = [m.mean() for _, m, _ in real if m.any()]
    real_area = float(np.mean([np.mean(by_type.get(t) or everything) for t in labels]))
    out = {"generated": mask_stats([p.image for p in pairs], [p.mask for p in pairs]),
           "real": {**mask_stats(*zip(*[(i, m) for i, m, _ in real])), "mask_area_same_types": round(real_area, 4)}}
    out["area_ratio"] = round(out["generated"]["mask_area"] / max(real_area, 1e-9), 2)
    judge = cached_judge(raw)
    if judge is not None:
        model, _ = load_judge(judge)
        out["judge_dice"] = round(float(np.mean(model.dice([p.image for p in pairs], [p.mask for p in pairs]))), 3)
    if preview is not None:
        out["preview"] = str(save_grid(preview, [p.image for p in pairs], [p.mask for p in pairs],
                                       [f"{k} {labels[k] or ''}".strip() for k in range(n)]))
    return out


def problems(steps: dict, recipe_steps: dict, quality: dict) -> list[str]:
    """Why this generator is not yet usable (empty: no sign of it)."""
    found = []
    short = [f"{p} {steps[p]}/{recipe_steps[p]}" for p in steps if steps[p] < MIN_RECIPE_SHARE * recipe_steps[p]]
    if short:
        found.append(f"parts trained under {MIN_RECIPE_SHARE:.0%} of their recipe's steps ({', '.join(short)})")
    g, r = quality["generated"], quality["real"]
    if not AREA_BAND[0] <= quality["area_ratio"] <= AREA_BAND[1]:
        found.append(f"masks cover {g['mask_area']:.0%} of the image against {r['mask_area_same_types']:.0%} in the "
                     f"real cases ({quality['area_ratio']}x)")
    if g["touches_border"] > r["touches_border"] + MAX_EXTRA_BORDER:
        found.append(f"{g['touches_border']:.0%} of masks touch the image border (real {r['touches_border']:.0%})")
    if g["darker_than_ring"] < min(MIN_DARK_SHARE, r["darker_than_ring"]):
        found.append(f"only {g['darker_than_ring']:.0%} of lesions are darker than their surroundings "
                     f"(real {r['darker_than_ring']:.0%}): masks do not follow the image")
    if quality.get("judge_dice") is not None and quality["judge_dice"] < MIN_JUDGE_DICE:
        found.append(f"a real-data segmenter finds the masks with Dice {quality['judge_dice']} (< {MIN_JUDGE_DICE})")
    return found


def fit_summary(raw: str | Path, out: str | Path, n: int = CHECK_PAIRS) -> dict:
    """The closing summary of ``synthaug fit RAW --out OUT``: written to OUT/fit_summary.json with a preview
    OUT/fit_preview.png; ``lines`` is what the command prints."""
    from .fit import CHECKPOINT, PLAN_NAME

    out = Path(out)
    plan = json.loads((out / PLAN_NAME).read_text(encoding="utf-8"))
    info = json.loads((out / CHECKPOINT / "synthaug.json").read_text(encoding="utf-8"))
    steps = info["fit"]["steps"]
    recipe = {p: plan["parts"][p]["recipe_steps"] for p in steps}
    quality = quality_check(raw, out / CHECKPOINT, n=n, preview=out / PREVIEW_NAME)
    found = problems(steps, recipe, quality)
    g, r = quality["generated"], quality["real"]
    lines = [f"fit: {info['fit']['last_run_minutes']} min; steps per part (trained/recipe): "
             + ", ".join(f"{p} {steps[p]}/{recipe[p]}" for p in steps),
             f"quality on {n} pairs (real training cases in brackets): mask area {g['mask_area']:.3f} "
             f"({r['mask_area_same_types']:.3f} at the same types, ratio {quality['area_ratio']}), touching the "
             f"border {g['touches_border']:.0%} ({r['touches_border']:.0%}), lesion darker than its ring "
             f"{g['darker_than_ring']:.0%} ({r['darker_than_ring']:.0%}), judge Dice "
             + (f"{quality['judge_dice']}" if "judge_dice" in quality else "not measured (no cached judge)"),
             f"preview: {quality['preview']}"]
    if found:
        lines.append("warning: the budget was too small for a usable generator: " + "; ".join(found)
                     + ". Use it to check the pipeline, not to train on; give the full recipes (on this 2-core "
                       "CPU about 3.5 h: --minutes 240 with a new --out) or a GPU")
    summary = {"steps": steps, "recipe_steps": recipe, "quality": quality, "usable": not found,
               "problems": found, "lines": lines}
    tmp = out / f".{SUMMARY_NAME}.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out / SUMMARY_NAME)
    return summary
