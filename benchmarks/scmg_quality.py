"""SCMG mask quality (issue "SCMG", Must show): the BUS paper's Table 4 on BUSI, box adherence, shape.

For each checkpoint (e.g. trained with and without L_cur) it generates masks per
tumour type with boxes drawn from the checkpoint's training-box distribution
and measures, next to the real BUSI train masks (all at 128 px, binary):
- curvature (Eq. 10, mean |kappa| over the boundary, sigma 1 px) mean +- std per type,
  and Cohen's d between benign and malignant (how separated the types are);
- box adherence: IoU between each mask's bounding box and the requested rectangle;
- shape: share of masks that are one connected, non-empty component; area distribution.
Writes results/<name>.{json,md,png} and a preview grid of masks with their rectangles.

    python benchmarks/scmg_quality.py --checkpoint with_Lcur=checkpoints/scmg-busi-128 \
        --checkpoint without_Lcur=runs/scmg-nocur/final --preview docs/scmg_preview.png
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import area_stats, write_results  # noqa: E402
from synthaug.data.datasets import PairDataset  # noqa: E402
from synthaug.geometry import boundary_curvature, box_iou, mask_boxes  # noqa: E402
from synthaug.paths import data_root  # noqa: E402
from synthaug.pipelines.base import LABELS  # noqa: E402
from synthaug.pipelines.scmg import ScmgMasks  # noqa: E402
from synthaug.preview import save_mask_grid  # noqa: E402


def curvature_stats(masks: np.ndarray) -> dict:
    k = boundary_curvature(torch.from_numpy(masks.astype(np.float32))[:, None]).numpy()
    k = k[~np.isnan(k)]
    return {"mean": float(k.mean()), "std": float(k.std()), "n": int(k.size), "values": k}


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    pooled = np.sqrt((a.var(ddof=1) * (a.size - 1) + b.var(ddof=1) * (b.size - 1)) / (a.size + b.size - 2))
    return float((b.mean() - a.mean()) / pooled)


def components(mask: np.ndarray) -> int:
    return int(ndimage.label(mask)[1])


def describe(masks_by_type: dict, requested: dict | None = None) -> dict:
    out = {}
    for label, masks in masks_by_type.items():
        curv = curvature_stats(masks)
        row = {"curvature": {k: v for k, v in curv.items() if k != "values"}, "area": area_stats(masks),
               "one_component": float(np.mean([components(m) == 1 for m in masks])),
               "non_empty": float(np.mean([m.any() for m in masks]))}
        if requested is not None:
            got = mask_boxes(torch.from_numpy(masks.astype(np.float32))[:, None])
            iou = box_iou(got, torch.tensor(requested[label], dtype=torch.float32)).numpy()
            iou[~masks.reshape(len(masks), -1).any(1)] = 0.0  # an empty mask follows no box
            row["box_iou"] = {"median": float(np.median(iou)), "mean": float(iou.mean()),
                              "share_ge_0.7": float((iou >= 0.7).mean())}
        out[label] = row
        out[label]["_kappa"] = curv["values"]
    b, m = out["benign"].pop("_kappa"), out["malignant"].pop("_kappa")
    out["cohens_d_malignant_minus_benign"] = cohens_d(b, m)
    return out


def real_masks(size: int) -> dict:
    ds = PairDataset.from_busi(data_root() / "BUSI", split="train", size=size)
    masks = np.stack([ds[i]["mask"][0].numpy() > 0.5 for i in range(len(ds))])
    labels = np.array(ds.labels)
    return {l: masks[labels == i] for i, l in enumerate(LABELS)}


def generated(ckpt: Path, n: int, seed: int) -> tuple[dict, dict, float, ScmgMasks]:
    gen = ScmgMasks.from_pretrained(ckpt)
    masks, boxes, t0 = {}, {}, time.time()
    for i, label in enumerate(LABELS):
        m, conds = gen.sample(n, seed=seed + i, label=label)
        masks[label], boxes[label] = m.astype(bool), [c.box for c in conds]
    return masks, boxes, (time.time() - t0) / (n * len(LABELS)), gen


def preview(gen: ScmgMasks, path: Path, per_row: int = 8, seed: int = 7) -> None:
    """Fig. 5 style: a row of benign and a row of malignant masks, each with its requested rectangle."""
    masks, boxes, titles = [], [], []
    for label in LABELS:
        m, conds = gen.sample(per_row, seed=seed, label=label)
        masks += list(m)
        boxes += [c.box for c in conds]
        titles += [label] * per_row
    save_mask_grid(path, masks, boxes, titles, ncol=per_row)


def plot(real: dict, gens: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = {"real BUSI train": real, **gens}
    fig, axes = plt.subplots(1, len(sets), figsize=(4 * len(sets), 3.2), sharey=True)
    for ax, (name, masks) in zip(np.atleast_1d(axes), sets.items()):
        for label, color in zip(LABELS, ("tab:blue", "tab:red")):
            k = curvature_stats(masks[label])["values"]
            ax.hist(k, bins=30, range=(0, 0.4), alpha=0.5, color=color, density=True, label=label)
        ax.set_title(name)
        ax.set_xlabel("mean boundary |curvature| (1/px)")
    np.atleast_1d(axes)[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(res: dict) -> str:
    def cell(row, label):
        c = row[label]["curvature"]
        return f"{c['mean']:.3f} ± {c['std']:.3f}"

    names = ["real BUSI train", *res["generated"]]
    rows = {"real BUSI train": res["real"], **res["generated"]}
    lines = ["# SCMG masks: curvature by tumour type (BUS paper Table 4), box adherence, shape", "",
             f"{res['n_per_type']} generated masks per type and checkpoint at {res['size']} px; boxes drawn from "
             "each checkpoint's training boxes of that type; real = all BUSI train masks. Curvature: Eq. 10, mean |kappa| "
             "over boundary pixels after a 1 px Gaussian (1/px; not on the paper's scale).", "",
             "| masks | benign kappa | malignant kappa | Cohen's d (mal - ben) | box IoU median | IoU >= 0.7 | "
             "one component | area benign | area malignant |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name in names:
        r = rows[name]
        iou = r["benign"].get("box_iou")
        iou_med = "–" if iou is None else f"{np.median([r[l]['box_iou']['median'] for l in LABELS]):.3f}"
        iou_share = "–" if iou is None else f"{np.mean([r[l]['box_iou']['share_ge_0.7'] for l in LABELS]):.2f}"
        one = np.mean([r[l]["one_component"] for l in LABELS])
        lines.append(f"| {name} | {cell(r, 'benign')} | {cell(r, 'malignant')} | "
                     f"{r['cohens_d_malignant_minus_benign']:.2f} | {iou_med} | {iou_share} | {one:.2f} | "
                     f"{r['benign']['area']['mean']:.3f} | {r['malignant']['area']['mean']:.3f} |")
    lines += ["", "Paper (256 px, its data): real benign 0.679 ± 0.151, malignant 0.789 ± 0.163.", "",
              "Seconds per mask: " + ", ".join(f"{k} {v:.4f}" for k, v in res["seconds_per_mask"].items()),
              "", f"![curvature histograms]({res['figure']})"]
    return "\n".join(lines)


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", action="append", required=True, metavar="NAME=FOLDER")
    ap.add_argument("-n", type=int, default=256, help="masks per tumour type and checkpoint")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--preview", type=Path, help="grid PNG of the first checkpoint's masks with their rectangles")
    ap.add_argument("--name", default="scmg_quality_busi128")
    ap.add_argument("--results-dir", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    ckpts = dict(c.split("=", 1) for c in args.checkpoint)
    real = real_masks(args.size)
    gens, res = {}, {"size": args.size, "n_per_type": args.n, "checkpoints": ckpts, "generated": {},
                     "seconds_per_mask": {}, "real": describe(real)}
    for i, (name, path) in enumerate(ckpts.items()):
        masks, boxes, sec, gen = generated(Path(path), args.n, args.seed)
        gens[name] = masks
        res["generated"][name] = describe(masks, boxes)
        res["generated"][name]["training"] = {k: gen.info.get(k) for k in ("steps", "train_minutes", "curvature_weight")}
        res["seconds_per_mask"][name] = sec
        if i == 0 and args.preview:
            preview(gen, args.preview)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    res["figure"] = f"{args.name}.png"
    plot(real, gens, args.results_dir / res["figure"])
    out = write_results(args.name, res, markdown(res), out_dir=args.results_dir)
    print(out)
    return out


if __name__ == "__main__":
    main()
