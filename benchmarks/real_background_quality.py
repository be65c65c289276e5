"""Real-background pairs against full-synthetic bus pairs and the real-vs-real floor (issue "Real-background pairs").

Backgrounds are drawn from the BUSI train part only (the held-out part never
enters a generated image). For each generator mode (full-synthetic ``bus``,
``bus`` repainting real train backgrounds) the script measures:

- realism: Frechet / kernel distance on EfficientNet-Lite0 features, against
  the real train images and against the held-out real images;
- coherence: the real segmenter's Dice on the generated (image, mask) pairs;
- old-lesion residue (real-background only): the real segmenter must find no
  lesion in the repainted region outside the new mask; a pair has residue
  when it finds a connected lesion of at least ``--residue-px`` pixels there.
  The same test on the untouched real image shows the judge does see the old
  lesion when it is there (the control);
- memorisation: each image's feature distance to its nearest train image,
  against the same distance for held-out real images; the share of generated
  images closer to a train image than any held-out real image is;
- speed: pairs per second, and a preview (real | new mask | repainted),
  benign and malignant rows.

    OMP_NUM_THREADS=1 python benchmarks/real_background_quality.py --n 128 --work /work/runs/bench_work
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, area_stats, busi_sets, write_results  # noqa: E402
from benchmarks.pig_quality import real_models  # noqa: E402
from integrations.smp_timm.augment import ordinary_augmentation  # noqa: E402
from integrations.smp_timm.classification import predict_scores  # noqa: E402
from integrations.smp_timm.segmentation import predict_masks  # noqa: E402
from synthaug import Condition, create_generator  # noqa: E402
from synthaug.data.datasets import PairDataset  # noqa: E402
from synthaug.metrics import auc_f1, dice, frechet_distance, image_features, kernel_distance  # noqa: E402
from synthaug.pipelines.real_background import Background, RealBackgroundGenerator  # noqa: E402


def nearest_distances(feats: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Euclidean feature distance of each row of ``feats`` to its nearest row of ``reference``."""
    d2 = (feats ** 2).sum(1)[:, None] + (reference ** 2).sum(1)[None] - 2 * feats @ reference.T
    return np.sqrt(np.maximum(d2, 0).min(1))


def residue(pred: np.ndarray, old: np.ndarray, new: np.ndarray, min_px: int) -> tuple[bool, int]:
    """(has residue, zone size): a predicted lesion component of >= ``min_px`` pixels inside the old
    lesion but away (3 px) from the new one."""
    zone = old & ~ndimage.binary_dilation(new, iterations=3)
    labels, n = ndimage.label(pred & zone)
    sizes = np.bincount(labels.ravel())[1:] if n else np.array([0])
    return bool(sizes.max() >= min_px), int(zone.sum())


def generate(gen, n: int, seed: int, batch_size: int):
    conds = [Condition(label="benign" if i % 2 == 0 else "malignant") for i in range(n)]
    t0 = time.time()
    pairs = gen.sample(seeds=[seed * 1_000_003 + i for i in range(n)], conditions=conds, batch_size=batch_size,
                       progress=True)
    return pairs, time.time() - t0


def measure(name: str, pairs, seconds: float, seg, cls, feats_train, feats_held, nn_held, args, backgrounds=None):
    images, masks = [p.image for p in pairs], [p.mask.astype(bool) for p in pairs]
    labels = [p.meta.get("label") for p in pairs]
    ds = PairDataset([(p.image, p.mask, p.meta.get("label"), f"gen_{i}") for i, p in enumerate(pairs)], size=128)
    pred, _ = predict_masks(seg, ds)
    dices = np.array([dice(p, m) for p, m in zip(pred, masks)])
    feats = image_features(images)
    nn_gen = nearest_distances(feats, feats_train)
    scores, _ = predict_scores(cls, ds)
    row = {"model": name, "n": len(pairs), "seconds": seconds, "pairs_per_second": len(pairs) / seconds,
           "fd_vs_train": frechet_distance(feats_train, feats), "kid_vs_train": kernel_distance(feats_train, feats),
           "fd_vs_heldout": frechet_distance(feats_held, feats), "kid_vs_heldout": kernel_distance(feats_held, feats),
           "dice_real_segmenter_on_generated": {"mean": float(dices.mean()), "std": float(dices.std())},
           "area": area_stats(masks),
           "classifier_on_generated": auc_f1(np.array([l == "malignant" for l in labels], int), scores),
           "nn_distance_to_train": {"median": float(np.median(nn_gen)), "mean": float(nn_gen.mean())},
           "closer_than_any_heldout": float(np.mean(nn_gen < nn_held.min()))}
    if backgrounds is not None:
        by_id = {b.case_id: b for b in backgrounds}
        res, control, zones = [], [], []
        bgs = [by_id[p.meta["background"]] for p in pairs]
        real_ds = PairDataset([(b.image, b.mask, b.label, b.case_id) for b in bgs], size=128)
        real_pred, _ = predict_masks(seg, real_ds)
        for pr, rp, p, b in zip(pred, real_pred, pairs, bgs):
            has, zone = residue(pr, b.mask, p.mask.astype(bool), args.residue_px)
            if zone >= args.residue_px:  # the old lesion is not simply covered by the new one
                res.append(has)
                control.append(residue(rp, b.mask, p.mask.astype(bool), args.residue_px)[0])
                zones.append(zone)
        row["residue"] = {"pairs_with_uncovered_old_lesion": len(res), "residue_rate": float(np.mean(res)),
                          "control_rate_on_real_images": float(np.mean(control)),
                          "uncovered_px_median": float(np.median(zones)), "min_component_px": args.residue_px}
        row["repainted_fraction"] = float(np.mean([p.meta["repainted_fraction"] for p in pairs]))
    return row


def preview(path: Path, pairs, backgrounds, per_row: int = 4) -> Path:
    """Rows of (real | new mask | repainted) triplets: benign rows above malignant rows."""
    from PIL import Image

    from synthaug.preview import overlay

    by_id = {b.case_id: b for b in backgrounds}
    rows = []
    for label in ("benign", "malignant"):
        chosen = [p for p in pairs if p.meta["label"] == label][: per_row * 2]
        for i in range(0, len(chosen), per_row):
            tiles = []
            for p in chosen[i:i + per_row]:
                b = by_id[p.meta["background"]]
                tiles += [overlay(b.image, b.mask, (64, 160, 255)), np.repeat(p.mask[..., None] * 255, 3, 2),
                          overlay(p.image, p.mask)]
            rows.append(np.concatenate(tiles, 1))
    Image.fromarray(np.concatenate(rows, 0).astype(np.uint8)).save(path)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generator", default="bus")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--work", type=Path, default=Path("runs/bench_work"))
    ap.add_argument("--seg-epochs", type=int, default=30)
    ap.add_argument("--cls-epochs", type=int, default=30)
    ap.add_argument("--placement", default="near", choices=["near", "anywhere"])
    ap.add_argument("--residue-px", type=int, default=20)
    ap.add_argument("--name", default="real_background_busi128")
    args = ap.parse_args(argv)

    sets = busi_sets(size=128, transform=ordinary_augmentation())
    seg, cls = real_models(args.work, sets, args.seg_epochs, args.cls_epochs)
    train, held = sets["train"].records, sets["val"].records
    feats_train = image_features([r.image for r in train])
    feats_held = image_features([r.image for r in held])
    nn_held = nearest_distances(feats_held, feats_train)
    held_pred, held_true = predict_masks(seg, sets["val"])
    held_dice = np.array([dice(p, t) for p, t in zip(held_pred, held_true)])
    floor = {"model": "real held-out images (floor)", "n": len(held),
             "dice_real_segmenter_on_generated": {"mean": float(held_dice.mean()), "std": float(held_dice.std())},
             "fd_vs_train": frechet_distance(feats_train, feats_held),
             "kid_vs_train": kernel_distance(feats_train, feats_held),
             "nn_distance_to_train": {"median": float(np.median(nn_held)), "mean": float(nn_held.mean())}}
    print(floor, flush=True)
    backgrounds = [Background(r.case_id, r.image, r.mask, r.label) for r in train]
    bus = create_generator(args.generator)
    rows = [floor]
    pairs, seconds = generate(bus, args.n, args.seed, args.batch_size)
    rows.append(measure("bus (full synthetic)", pairs, seconds, seg, cls, feats_train, feats_held, nn_held, args))
    print(rows[-1], flush=True)
    rb = RealBackgroundGenerator(bus, backgrounds, placement=args.placement)
    pairs, seconds = generate(rb, args.n, args.seed, args.batch_size)
    rows.append(measure(f"bus, real background ({args.placement})", pairs, seconds, seg, cls, feats_train,
                        feats_held, nn_held, args, backgrounds))
    print(rows[-1], flush=True)
    preview(RESULTS / f"{args.name}_preview.png", pairs, backgrounds)

    md = ["| images | n | pairs/s | FD vs train | KID vs train | FD vs held-out | KID vs held-out | seg. Dice on "
          "generated | cls. AUC on generated | NN dist. to train (median) | closer than any held-out | residue "
          "(control) |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        gen = "pairs_per_second" in r
        res = r.get("residue")
        md.append("| " + " | ".join([
            r["model"], str(r["n"]), f"{r['pairs_per_second']:.2f}" if gen else "–",
            f"{r['fd_vs_train']:.1f}", f"{r['kid_vs_train']:.4f}",
            f"{r['fd_vs_heldout']:.1f}" if gen else "–", f"{r['kid_vs_heldout']:.4f}" if gen else "–",
            f"{r['dice_real_segmenter_on_generated']['mean']:.3f}",
            f"{r['classifier_on_generated']['auc']:.3f}" if gen else "–",
            f"{r['nn_distance_to_train']['median']:.2f}",
            f"{r['closer_than_any_heldout']:.2f}" if gen else "–",
            f"{res['residue_rate']:.2f} ({res['control_rate_on_real_images']:.2f}, "
            f"{res['pairs_with_uncovered_old_lesion']} pairs)" if res else "–"]) + " |")
    md += ["", f"Backgrounds: the {len(train)} BUSI train-part images; held-out: {len(held)} images "
           f"({sets['internal_test_name']}). Judges (segmenter, classifier) trained on the train part only. "
           f"Residue: share of pairs whose uncovered old lesion (old mask minus the 3-px-dilated new mask, "
           f">= {args.residue_px} px) still holds a predicted lesion component of >= {args.residue_px} px; the "
           "control is the same test on the untouched real image. Memorisation: a real-background image shares "
           "its tissue with a train image by design, so its nearest-train distance is expected to be small."]
    write_results(args.name, {"generator": args.generator, "placement": args.placement, "rows": rows},
                  "\n".join(md))


if __name__ == "__main__":
    main()
