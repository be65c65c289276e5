"""The quality gate measured (issue 16, item 4): pairs before and after ``--gate-dice``, per generator.

For each generator and threshold the same case seeds are sampled without and
with the gate (``synthaug.gate``), and the script reports

- the gate's rejection rate (rejected draws / all draws) and seconds per
  accepted pair (generation + scoring + redraws, against the ungated seconds);
- coherence: the *benchmark's* real segmenter (trained on the 414-case BUSI
  train part, ``pig_quality.real_models``) on the generated pairs, an
  independent check, since the gate's own judge accepts only what it scores
  >= T by construction; its Dice is reported too;
- realism: Frechet / kernel distance (EfficientNet-Lite0 features) to the
  train part, and mask area against the real one.

The gate's judge is the one ``expand --gate-dice`` uses on the same real
cases (trained once, cached); ``--gate-data`` names them: an nnU-Net raw
folder made by ``synthaug convert busi`` (the BUSI train split).

    OMP_NUM_THREADS=1 python benchmarks/gate_quality.py --gate-data RAW/Dataset601_BUSI \\
        --generator bus=checkpoints/bus-busi-128 --generator pig=checkpoints/pig-busi-128 \\
        --gate-dice 0.5 --gate-dice 0.7 --n 64 --work /work/runs/bench_work
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import area_stats, busi_sets, matched_area, sampler_options, stu_set, write_results  # noqa: E402
from benchmarks.pig_quality import real_models  # noqa: E402
from integrations.smp_timm.segmentation import dice_per_case  # noqa: E402
from synthaug import Condition, create_generator  # noqa: E402
from synthaug.data.datasets import PairDataset  # noqa: E402
from synthaug.gate import GateUnreachable, judge_for, load_judge, with_gate  # noqa: E402
from synthaug.metrics import frechet_distance, image_features, kernel_distance  # noqa: E402
from synthaug.pipelines.base import LABELS, sample_cases  # noqa: E402


def measure(gen, n: int, seed: int, seg, gate_judge, real_feats, real_area: dict) -> dict:
    """Sample cases 0..n-1 (types alternating) and score them."""
    def condition_of(k: int) -> Condition:
        return Condition(label=LABELS[k % 2] if "label" in gen.conditions else None)

    t0 = time.time()
    pairs = sample_cases(gen, seed, range(n), condition_of, progress=True)
    seconds = time.time() - t0
    images, masks = [p.image for p in pairs], [p.mask.astype(bool) for p in pairs]
    labels = [p.meta.get("label") for p in pairs]
    ds = PairDataset([(p.image, p.mask, p.meta.get("label"), f"gen_{i}") for i, p in enumerate(pairs)], size=128)
    bench_dice = dice_per_case(seg, ds)
    own = gate_judge.dice(images, masks)
    feats = image_features(images)
    return {"n": n, "engine": getattr(gen, "engine", "torch"), "seconds": round(seconds, 1),
            "seconds_per_pair": round(seconds / n, 3),
            "dice_benchmark_segmenter": {"mean": float(bench_dice.mean()), "std": float(bench_dice.std())},
            "dice_gate_judge": {"mean": float(own.mean()), "std": float(own.std()),
                                "share_at_or_above": {str(t): float((own >= t).mean()) for t in (0.5, 0.6, 0.7)}},
            "frechet_distance": frechet_distance(real_feats, feats), "kernel_distance": kernel_distance(real_feats, feats),
            "area": area_stats(masks, labels), "area_real_matched": matched_area(real_area, labels)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generator", action="append", required=True,
                    help="NAME=CHECKPOINT[@KEY=VALUE,...] (repeatable), e.g. pig=DIR@mask_guidance=4")
    ap.add_argument("--gate-dice", action="append", type=float, required=True, help="threshold (repeatable)")
    ap.add_argument("--gate-tries", type=int, default=20)
    ap.add_argument("--gate-data", type=Path, help="real training cases of the gate's judge (raw folder)")
    ap.add_argument("--judge", type=Path, help="a trained judge folder instead")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--work", type=Path, default=Path("runs/bench_work"), help="the benchmark judges' cache")
    ap.add_argument("--name", default="gate_quality_busi128")
    args = ap.parse_args(argv)

    sets = busi_sets(size=128)
    seg, _ = real_models(args.work, sets, 30, None)  # Dice only
    real_feats = image_features([r.image for r in sets["train"].records])
    real_area = area_stats([r.mask for r in sets["train"].records], [r.label for r in sets["train"].records])
    judge = args.judge or judge_for(args.gate_data)
    gate_judge, judge_hash = load_judge(judge)
    judge_info = json.loads((Path(judge) / "synthaug.json").read_text(encoding="utf-8"))
    judge_cases = judge_info.get("training_data", {}).get("n_cases", "its")
    stu = stu_set(size=128).records  # the gate judge saw every BUSI train case: STU is its held-out check
    judge_on_stu = gate_judge.dice([r.image for r in stu], [r.mask for r in stu])
    judge_on_stu = {"mean": float(judge_on_stu.mean()), "std": float(judge_on_stu.std()), "n": len(stu)}
    print("gate judge on STU", judge_on_stu, flush=True)
    rows = []
    for spec in args.generator:
        name, _, path = spec.partition("=")
        path, _, opts = path.partition("@")
        options = sampler_options(opts)
        plain = create_generator(path, **options)
        row = {"generator": name, "checkpoint": path, "options": options, "gate": None,
               **measure(plain, args.n, args.seed, seg, gate_judge, real_feats, real_area)}
        print(row, flush=True)
        rows.append(row)
        for t in args.gate_dice:
            gen = with_gate(create_generator(path, **options), t, judge=judge, tries=args.gate_tries)
            row = {"generator": name, "checkpoint": path, "options": options, "gate": t}
            try:
                row.update(measure(gen, args.n, args.seed, seg, gate_judge, real_feats, real_area))
            except GateUnreachable as e:
                row["unreachable"] = str(e)
            row.update(draws=gen.draws, accepted=gen.accepted, rejection_rate=round(gen.rejection_rate, 4),
                       seconds_per_accepted_pair=round(gen.seconds / max(gen.accepted, 1), 3))
            print(row, flush=True)
            rows.append(row)
    md = ["| generator | gate Dice | rejection rate | s / accepted pair | benchmark segmenter Dice | gate judge Dice | "
          "FD | KID | mask area (real, same types) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        gate = "none" if r["gate"] is None else f"{r['gate']:g}"
        if "unreachable" in r:
            md.append(f"| {r['generator']} | {gate} | {r['rejection_rate']:.0%} ({r['draws']} draws) | unreachable "
                      f"within {args.gate_tries} draws | – | – | – | – | – |")
            continue
        rej = "–" if r["gate"] is None else f"{r['rejection_rate']:.0%}"
        spp = r["seconds_per_pair"] if r["gate"] is None else r["seconds_per_accepted_pair"]
        md.append(f"| {r['generator']} | {gate} | {rej} | {spp:.2f} | {r['dice_benchmark_segmenter']['mean']:.3f} | "
                  f"{r['dice_gate_judge']['mean']:.3f} | {r['frechet_distance']:.1f} | {r['kernel_distance']:.4f} | "
                  f"{r['area']['mean']:.3f} ({r.get('area_real_matched') or real_area['mean']:.3f}) |")
    md += ["", f"{args.n} pairs per row, the same case seeds with and without the gate (types alternating). Gate judge: "
           f"`{judge}` (hash {judge_hash}), trained on {judge_cases} real BUSI train cases "
           f"({'given with --judge' if args.judge else 'the --gate-data folder'}; its Dice on the 42 STU images, "
           f"an external check: {judge_on_stu['mean']:.3f}); benchmark segmenter: trained on "
           f"the {len(sets['train'])}-case BUSI train part, so on these rows it is an independent judge. "
           f"Seconds are wall time with `OMP_NUM_THREADS=1` beside other jobs; engine: "
           f"{', '.join(sorted({r.get('engine', '?') for r in rows if 'engine' in r}))}."]
    write_results(args.name, {"judge": str(judge), "judge_hash": judge_hash, "judge_dice_on_stu": judge_on_stu,
                              "real_area": real_area,
                              "rows": rows}, "\n".join(md))


if __name__ == "__main__":
    main()
