"""The own-data control at 25% real (issue 31, item 6): a generator fit only on the cases a user has.

The shipped ``bus`` checkpoint saw all of BUSI train: at 25% real it is the case "a generator trained on a
public set, few local annotations". This script measures the other case, a user with only their 25%:

1. ``export``: the 25% subset of the benchmark's train part drawn with ``--subset-seed`` (the same nested,
   stratified draw as ``seg.py --real-fraction 0.25``) written as an nnU-Net raw folder, BUSI case ids kept
   (so the checkpoint's record names exactly the cases it saw);
2. ``fit``: ``synthaug fit`` on it with the full cpu-128 recipes (resumable: rerun the same command);
3. ``runs``: the scarcity profile at 25% with that subset for every training seed, for both generators:
   ``seg_scarcity_own_f25`` (the own-data generator) and ``seg_scarcity_shipped_fixed_f25`` (the shipped one),
   each with ``real`` (the same runs) and ``bus 100%``.

Every report records its generator's training cases (``generator.training_cases``, ``busi_train_only``).

    OMP_NUM_THREADS=1 python benchmarks/scarcity_own_data.py all --work /work/runs/bench_work \\
        --fit-out /work/runs/own25_fit
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import seg  # noqa: E402
from benchmarks.bench.driver import benchmark_splits  # noqa: E402
from benchmarks.common import data_root  # noqa: E402
from synthaug.evaluation.splits import real_fraction_subset  # noqa: E402
from synthaug.io.public_sets import iter_busi, write_raw_dataset  # noqa: E402

FRACTION, DATASET_ID = 0.25, 925


def subset_ids(subset_seed: int) -> set[str]:
    train = benchmark_splits(128, None, external=False)["sets"]["train"]
    return {r.case_id for r in real_fraction_subset(train, FRACTION, subset_seed).records}


def export(raw_parent: Path, subset_seed: int) -> Path:
    """The subset as ``raw_parent/Dataset925_BUSI25s<seed>`` (written once; an existing folder is reused)."""
    name = f"BUSI25s{subset_seed}"
    folder = raw_parent / f"Dataset{DATASET_ID}_{name}"
    if (folder / "dataset.json").is_file():
        return folder
    keep = subset_ids(subset_seed)
    cases = (c for c in iter_busi(data_root() / "BUSI", "train") if c["case_id"] in keep)
    return write_raw_dataset(cases, raw_parent, DATASET_ID, name, source="BUSI",
                             description=f"BUSI train: the benchmark's 25% real subset (subset seed {subset_seed})")


def fit(raw: Path, out: Path) -> Path:
    """``synthaug fit`` with the full cpu-128 recipes; a rerun resumes the parts where they stopped."""
    subprocess.run([sys.executable, "-m", "synthaug.cli", "fit", str(raw), "--out", str(out)], check=True)
    return out / "checkpoint"


def runs(args, checkpoint: Path) -> None:
    common = ["--profile", "scarcity", "--work", str(args.work), "--conditions", "real,bus 100%", "--seeds",
              args.seeds, "--real-fraction", str(FRACTION), "--subset-seed", str(args.subset_seed)]
    seg.main(seg.SEGMENTATION, common + ["--generator", str(checkpoint), "--name", "seg_scarcity_own_f25"])
    seg.main(seg.SEGMENTATION, common + ["--generator", args.shipped, "--name", "seg_scarcity_shipped_fixed_f25"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=("export", "fit", "runs", "all"))
    ap.add_argument("--subset-seed", type=int, default=0)
    ap.add_argument("--raw", type=Path, default=Path("runs/raw"), help="where the subset's raw folder is written")
    ap.add_argument("--fit-out", type=Path, default=Path("runs/own25_fit"))
    ap.add_argument("--work", type=Path, default=Path("runs/bench_work"))
    ap.add_argument("--shipped", default="checkpoints/bus-busi-128")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    args = ap.parse_args(argv)
    raw = export(args.raw, args.subset_seed)
    print(f"subset: {raw}", flush=True)
    if args.step in ("fit", "all"):
        fit(raw, args.fit_out)
    if args.step in ("runs", "all"):
        runs(args, args.fit_out / "checkpoint")


if __name__ == "__main__":
    main()
