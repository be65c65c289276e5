"""Pair-generator quality, coherence, control and speed (issues "PIG" and "BUS generator", Must show).

Named after its first user, it measures any registered pair generator
(``--generator``), variants of it (``--variant "Ours-m:ablation=mask-only"``:
generator options, e.g. the BUS paper's ablations) and other generators for
comparison (``--compare PIG=checkpoints/pig-busi-128``) under the same settings.

Stages (cached in --work so a run can be resumed or split):
1. real models: an smp U-Net segmenter and a timm classifier trained on the
   BUSI train part (the validation part is held out), both from scratch;
2. per sampler setting: generate pairs (timed, peak memory), then
   - pair coherence: the real segmenter's Dice on generated (image, mask) pairs,
     next to its Dice on real held-out images;
   - masks: share binary and non-empty, area distribution vs real;
   - realism: Frechet and kernel distances on EfficientNet-Lite0 features;
   - control: the real classifier's AUC at telling generated benign from malignant.

    python benchmarks/pig_quality.py --generator checkpoints/pig-busi-128 \
        --setting ddim:256:32 --setting dpm++:20:128 --setting dpm++:10:128 \
        --baseline runs/ddpm-image-cpu-128/final

    python benchmarks/pig_quality.py --generator checkpoints/bus-busi-128 --label BUS \
        --variant "BUS mask-only:ablation=mask-only" --variant "BUS text-only:ablation=text-only" \
        --compare PIG=checkpoints/pig-busi-128 --setting dpm++:20:128

``--baseline`` adds the image-only DDPM of the same U-Net size and step budget
(the PIG paper's Table 1 comparison), sampled with the same settings; it has
no masks, so only its realism and speed are measured.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import area_stats, busi_sets, matched_area, real_area_of, sampler_options, write_results  # noqa: E402
from integrations.smp_timm import build_classifier, build_segmenter, train_classifier, train_segmenter  # noqa: E402
from integrations.smp_timm.augment import ordinary_augmentation  # noqa: E402
from integrations.smp_timm.classification import predict_scores  # noqa: E402
from integrations.smp_timm.segmentation import dice_per_case  # noqa: E402
from synthaug import Condition, create_generator  # noqa: E402
from synthaug.data.datasets import PairDataset  # noqa: E402
from synthaug.precision import use_bf16  # noqa: E402
from synthaug.metrics import auc_f1, frechet_distance, image_features, kernel_distance  # noqa: E402


def real_models(work: Path, sets: dict, seg_epochs: int, cls_epochs: int | None):
    """Train (or load) the segmenter and classifier used as judges; both see only the train part.
    ``cls_epochs`` None: the segmenter only (the classifier returned is None), for benchmarks that
    read Dice alone (the classifier costs as long again to train on a new machine).

    Several benchmarks share one work folder's judges: the first process to need them trains them
    under a lock and writes each file atomically, the others wait on the lock and load them."""
    work.mkdir(parents=True, exist_ok=True)
    seg = build_segmenter("unet", "resnet18")
    cls = build_classifier("resnet18") if cls_epochs is not None else None
    judges = [(seg, "segmenter", train_segmenter, seg_epochs)]
    judges += [(cls, "classifier", train_classifier, cls_epochs)] if cls is not None else []
    with FileLock(str(work / "real_models.lock")):
        for model, name, fn, epochs in judges:
            path = work / f"real_{name}.pt"
            if path.exists():
                model.load_state_dict(torch.load(path))
            else:
                t0 = time.time()
                fn(model, sets["train"], epochs=epochs, batch_size=16, lr=1e-3)
                partial = path.with_name(path.name + ".partial")
                torch.save(model.state_dict(), partial)
                os.replace(partial, path)
                print(f"{name}: {epochs} epochs in {time.time() - t0:.0f} s", flush=True)
            model.eval()
    return seg, cls


def generate(gen, n: int, seed: int, batch_size: int):
    labels = ["benign" if i % 2 == 0 else "malignant" for i in range(n)]
    conds = [Condition(label=l if "label" in gen.conditions else None) for l in labels]
    t0 = time.time()
    pairs = gen.sample(n, seed=seed, conditions=conds, batch_size=batch_size, progress=True)
    return pairs, time.time() - t0


def evaluate_setting(gen_path, scheduler, steps, n, seed, batch_size, seg, cls, real_feats, real_areas,
                     options: dict | None = None):
    options = dict(options or {})
    seed = int(options.pop("seed", seed))  # a variant may draw other seeds (the seed spread of a metric)
    gen = create_generator(gen_path, **{"scheduler": scheduler, "steps": steps, **options})
    pairs, seconds = generate(gen, n, seed, batch_size)
    images, masks = [p.image for p in pairs], [p.mask.astype(bool) for p in pairs]
    labels = [p.meta.get("label") for p in pairs]
    ds = PairDataset([(p.image, p.mask, p.meta.get("label"), f"gen_{i}") for i, p in enumerate(pairs)], size=128)
    dices = dice_per_case(seg, ds)
    feats = image_features(images)
    res = {
        "scheduler": scheduler, "steps": steps, "n": n, "seed": seed, "engine": gen.engine,
        "seconds": seconds, "pairs_per_second": n / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "nonempty_binary_share": float(np.mean([m.any() for m in masks])),
        "area": area_stats(masks, labels), "area_real": real_areas,
        "area_real_matched": matched_area(real_areas, labels),
        "dice_real_segmenter_on_generated": {"mean": float(dices.mean()), "std": float(dices.std())},
        "frechet_distance": frechet_distance(real_feats, feats),
        "kernel_distance": kernel_distance(real_feats, feats),
    }
    if "label" in gen.conditions:
        scores, y = predict_scores(cls, ds)
        res["classifier_on_generated"] = auc_f1(np.array([l == "malignant" for l in labels], int), scores)
    return res, pairs


@torch.no_grad()
def baseline_images(path: Path, scheduler: str, steps: int, n: int, seed: int, batch_size: int):
    """Images (uint8, output size) from an image-only DDPM checkpoint (a diffusers DDIMPipeline folder)."""
    from diffusers import DDIMPipeline

    from synthaug.pipelines.base import pair_seeds, to_uint8
    from synthaug.pipelines.schedulers import make_scheduler

    pipe = DDIMPipeline.from_pretrained(str(path), dtype=torch.float32)
    size = json.loads((Path(path) / "synthaug.json").read_text(encoding="utf-8")).get("output_size", pipe.unet.config.sample_size)
    res, seeds, out, t0 = pipe.unet.config.sample_size, pair_seeds(seed, n), [], time.time()
    for i in range(0, n, batch_size):
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds[i:i + batch_size]]
        x = torch.stack([torch.randn(1, res, res, generator=g) for g in gens])
        sched = make_scheduler(scheduler, pipe.scheduler.config)
        sched.set_timesteps(steps)
        for t in sched.timesteps:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16(True)):
                eps = pipe.unet(x, t.expand(len(x))).sample.float()
            x = sched.step(eps, t, x).prev_sample
        x = torch.nn.functional.interpolate(x.clamp(-1, 1), size=(size, size), mode="bicubic", align_corners=False)
        out += list(to_uint8(x))
    return out, time.time() - t0


def evaluate_baseline(path: Path, scheduler: str, steps: int, n: int, seed: int, batch_size: int, real_feats) -> dict:
    images, seconds = baseline_images(path, scheduler, steps, n, seed, batch_size)
    feats = image_features(images)
    return {"model": "image-only DDPM (baseline)", "scheduler": scheduler, "steps": steps, "n": n,
            "seconds": seconds, "pairs_per_second": n / seconds,
            "frechet_distance": frechet_distance(real_feats, feats), "kernel_distance": kernel_distance(real_feats, feats)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generator", default="pig")
    ap.add_argument("--label", default="PIG", help="the generator's name in the table")
    ap.add_argument("--variant", action="append", default=[],
                    help='"NAME:key=value,...": the generator again with these options (repeatable)')
    ap.add_argument("--compare", action="append", default=[], help="NAME=CHECKPOINT: another generator (repeatable)")
    ap.add_argument("--setting", action="append", default=[], help="scheduler:steps:n, repeatable")
    ap.add_argument("--work", type=Path, default=Path("runs/bench_work"))
    ap.add_argument("--seg-epochs", type=int, default=30)
    ap.add_argument("--cls-epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--name", default="pig_quality")
    ap.add_argument("--only-real-models", action="store_true", help="train the judges and stop")
    ap.add_argument("--baseline", type=Path, help="image-only DDPM checkpoint to compare realism with (Table 1)")
    args = ap.parse_args(argv)

    sets = busi_sets(size=128, transform=ordinary_augmentation())
    seg, cls = real_models(args.work, sets, args.seg_epochs, args.cls_epochs)
    real_val_dice = dice_per_case(seg, sets["val"])
    val_scores, val_y = predict_scores(cls, sets["val"])
    judges = {"internal_test": sets["internal_test_name"],
              "segmenter_dice_on_real_heldout": {"mean": float(real_val_dice.mean()), "std": float(real_val_dice.std())},
              "classifier_on_real_heldout": auc_f1(val_y, val_scores)}
    print(judges, flush=True)
    if args.only_real_models:
        return
    real_train = sets["train"]
    real_images = [r.image for r in real_train.records]
    real_feats = image_features(real_images)
    real_areas = area_stats([r.mask for r in real_train.records], [r.label for r in real_train.records])
    heldout = image_features([r.image for r in sets["val"].records])
    reference = {"model": "real held-out images (reference)", "n": len(sets["val"]),
                 "frechet_distance": frechet_distance(real_feats, heldout),
                 "kernel_distance": kernel_distance(real_feats, heldout)}  # the floor a generator can reach
    print(reference, flush=True)
    models = [(args.label, args.generator, {})]
    models += [(v.partition(":")[0], args.generator, sampler_options(v.partition(":")[2])) for v in args.variant]
    models += [(c.partition("=")[0], c.partition("=")[2], {}) for c in args.compare]
    rows = [reference]
    for s in args.setting or ["ddim:256:32", "dpm++:20:128"]:
        scheduler, steps, n = s.split(":")
        for name, path, options in models:
            res, pairs = evaluate_setting(path, scheduler, int(steps), int(n), args.seed, args.batch_size,
                                          seg, cls, real_feats, real_areas, options)
            res.update(model=name, options=options)
            print(res, flush=True)
            rows.append(res)
        if args.baseline:
            rows.append(evaluate_baseline(args.baseline, scheduler, int(steps), int(n), args.seed, args.batch_size,
                                          real_feats))
            print(rows[-1], flush=True)
    md = ["| model | sampler | steps | pairs/s | FD | KID | seg. Dice on generated | non-empty | area mean (real, same types) | "
          "cls. AUC gen. |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "scheduler" not in r:  # real held-out images: realism only
            md.append(f"| {r['model']} | – | – | – | {r['frechet_distance']:.1f} | {r['kernel_distance']:.4f} | "
                      "– | – | – | – |")
            continue
        if "area" not in r:  # the image-only baseline: realism and speed only
            md.append(f"| {r['model']} | {r['scheduler']} | {r['steps']} | {r['pairs_per_second']:.3f} (images) | "
                      f"{r['frechet_distance']:.1f} | {r['kernel_distance']:.4f} | – | – | – | – |")
            continue
        auc = r.get("classifier_on_generated", {}).get("auc", float("nan"))
        md.append(f"| {r['model']} | {r['scheduler']} | {r['steps']} | {r['pairs_per_second']:.3f} | "
                  f"{r['frechet_distance']:.1f} | {r['kernel_distance']:.4f} | "
                  f"{r['dice_real_segmenter_on_generated']['mean']:.3f} | {r['nonempty_binary_share']:.2f} | "
                  f"{r['area']['mean']:.3f} ({real_area_of(r):.3f}) | {auc:.3f} |")
    md.append("")
    md.append(f"Judges trained on {len(real_train)} BUSI train images; on the held-out part ({judges['internal_test']}): "
              f"segmenter Dice {judges['segmenter_dice_on_real_heldout']['mean']:.3f}, "
              f"classifier AUC {judges['classifier_on_real_heldout']['auc']:.3f}. FD/KID are against the "
              f"{len(real_train)} train images; the reference row puts the {reference['n']} held-out real images "
              "through the same distance (what a perfect generator would score at that sample size).")
    write_results(args.name, {"generator": str(args.generator), "compare": args.compare, "baseline": str(args.baseline or ""), "judges": judges,
                              "settings": rows}, "\n".join(md))


if __name__ == "__main__":
    main()
