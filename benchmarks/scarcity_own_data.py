"""The own-data control at 25% real (issue 31, item 6): a generator fit only on the cases a user has.

The shipped ``bus`` checkpoint saw all of BUSI train: at 25% real it is the case "a generator trained on a
public set, few local annotations". This script measures the other case, a user with only their 25%:

1. ``export``: the 25% subset of the benchmark's train part drawn with ``--subset-seed`` (the same nested,
   stratified draw as ``seg.py --real-fraction 0.25``) written as an nnU-Net raw folder, BUSI case ids kept
   (so the checkpoint's record names exactly the cases it saw);
2. ``fit``: ``synthaug fit`` on it with the full cpu-128 recipes (resumable: rerun the same command). The fit
   takes longer than a session and the work folder may not outlive its machine: each part that finishes
   (its ``final`` folder, with its card) and the plan are copied into ``--parts-store`` (committed), and a
   rerun on a new machine starts from them;
3. ``runs``: the scarcity profile at 25% with that subset for every training seed, for both generators:
   ``seg_scarcity_own_f25`` (the own-data generator) and ``seg_scarcity_shipped_fixed_f25`` (the shipped one),
   each with ``real`` (the same runs) and ``bus 100%``, seed by seed (each report holds the seeds done).

Every report records its generator's training cases (``generator.training_cases``, ``busi_train_only``).

    OMP_NUM_THREADS=1 python benchmarks/scarcity_own_data.py all --work /work/runs/bench_work \\
        --fit-out /work/runs/own25_fit
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import seg  # noqa: E402
from benchmarks.bench.driver import benchmark_splits  # noqa: E402
from benchmarks.common import RESULTS, busi_subset_folder, pending_runs  # noqa: E402
from synthaug.evaluation.splits import real_fraction_subset  # noqa: E402
from synthaug.fit import PLAN_NAME, finished_parts  # noqa: E402

FRACTION, DATASET_ID = 0.25, 925


def subset_ids(subset_seed: int) -> set[str]:
    train = benchmark_splits(128, None, external=False)["sets"]["train"]
    return {r.case_id for r in real_fraction_subset(train, FRACTION, subset_seed).records}


def export(raw_parent: Path, subset_seed: int) -> Path:
    """The subset as ``raw_parent/Dataset925_BUSI25s<seed>`` (written once; an existing folder is reused)."""
    return busi_subset_folder(raw_parent, DATASET_ID, f"BUSI25s{subset_seed}", subset_ids(subset_seed),
                              description=f"BUSI train: the benchmark's 25% real subset (subset seed {subset_seed})")


def _copy_folder(src: Path, dst: Path) -> None:
    """``dst`` replaced by a copy of ``src`` in one rename (a kill leaves the old copy or the new one)."""
    tmp = dst.with_name(f".{dst.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    old = dst.with_name(f".{dst.name}.old")
    if dst.exists():
        dst.rename(old)
    tmp.rename(dst)
    shutil.rmtree(old, ignore_errors=True)


def store_parts(out: Path, store: Path) -> list[str]:
    """Copy the plan and every finished part of ``out`` not yet (or not as far) in ``store``; returns the copied."""
    copied = []
    for part in finished_parts(out):
        final, kept = out / part / "final", store / part / "final"
        if not kept.is_dir() or (final / "synthaug.json").read_bytes() != (kept / "synthaug.json").read_bytes():
            (store / part).mkdir(parents=True, exist_ok=True)
            _copy_folder(final, kept)
            copied.append(part)
    if copied:
        shutil.copyfile(out / PLAN_NAME, store / f".{PLAN_NAME}.tmp")
        (store / f".{PLAN_NAME}.tmp").replace(store / PLAN_NAME)
    return copied


def restore_parts(store: Path, out: Path) -> list[str]:
    """A new machine: the stored plan and finished parts into an ``out`` that has no plan yet."""
    if (out / PLAN_NAME).is_file() or not (store / PLAN_NAME).is_file():
        return []
    parts = [p.parent.name for p in sorted(store.glob("*/final"))]
    for part in parts:
        _copy_folder(store / part / "final", out / part / "final")
    shutil.copyfile(store / PLAN_NAME, out / PLAN_NAME)  # last: without it the parts are not trusted
    return parts


def fit(raw: Path, out: Path, store: Path | None = None, poll_seconds: float = 60) -> Path:
    """``synthaug fit`` with the full cpu-128 recipes; a rerun resumes the parts where they stopped.
    With ``store``, finished parts are restored from it first and copied into it as they finish."""
    if store is not None and (parts := restore_parts(store, out)):
        print(f"restored from {store}: {', '.join(parts)}", flush=True)
    proc = subprocess.Popen([sys.executable, "-m", "synthaug.cli", "fit", str(raw), "--out", str(out)])
    while proc.poll() is None:
        time.sleep(poll_seconds)
        if store is not None and (parts := store_parts(out, store)):
            print(f"stored in {store}: {', '.join(parts)}", flush=True)
    if proc.returncode:
        raise SystemExit(f"synthaug fit failed (exit {proc.returncode})")
    if store is not None:
        store_parts(out, store)
    return out / "checkpoint"


REPORTS = ("seg_scarcity_own_f25", "seg_scarcity_shipped_fixed_f25")  # the own-data generator's, the shipped one's


def runs(args, checkpoint: Path) -> None:
    """Seed by seed, both generators, each report rewritten with every seed done so far (a session that ends
    mid-way keeps its finished seeds). With ``--import-committed`` the runs the committed reports and pending
    files (``benchmarks/keep_runs.py``) hold are copied into ``--work`` first (a new machine)."""
    seeds = [int(s) for s in args.seeds.split(",")]
    common = ["--profile", "scarcity", "--work", str(args.work), "--conditions", "real,bus 100%",
              "--real-fraction", str(FRACTION), "--subset-seed", str(args.subset_seed)]
    generators = dict(zip(REPORTS, (str(checkpoint), args.shipped)))
    if args.import_committed:
        with tempfile.TemporaryDirectory() as scratch:
            for name, generator in generators.items():
                sources = [p for p in [RESULTS / f"{name}.json"] if p.is_file()] + pending_runs(RESULTS)
                if sources:
                    seg.main(seg.SEGMENTATION, common + ["--generator", generator, "--seeds", args.seeds,
                                                         "--report-only", "--results-dir", scratch, "--name", name]
                             + sum((["--import-runs", str(p)] for p in sources), []))
    for seed in seeds:
        done = ",".join(str(s) for s in seeds if s <= seed)
        for name, generator in generators.items():
            seg.main(seg.SEGMENTATION, common + ["--generator", generator, "--seeds", done, "--name", name])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=("export", "fit", "runs", "all"))
    ap.add_argument("--subset-seed", type=int, default=0)
    ap.add_argument("--raw", type=Path, default=Path("runs/raw"), help="where the subset's raw folder is written")
    ap.add_argument("--fit-out", type=Path, default=Path("runs/own25_fit"))
    ap.add_argument("--parts-store", type=Path, default=None,
                    help="finished parts of the fit, kept across machines: commit it "
                         "(default checkpoints/own-busi25s<subset seed>-parts)")
    ap.add_argument("--work", type=Path, default=Path("runs/bench_work"))
    ap.add_argument("--shipped", default="checkpoints/bus-busi-128")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--import-committed", action="store_true",
                    help="first copy the finished runs of the committed reports and pending files into --work "
                         "(a new machine)")
    args = ap.parse_args(argv)
    raw = export(args.raw, args.subset_seed)
    print(f"subset: {raw}", flush=True)
    if args.step in ("fit", "all"):
        store = args.parts_store or Path(f"checkpoints/own-busi25s{args.subset_seed}-parts")
        fit(raw, args.fit_out, store)
    if args.step in ("runs", "all"):
        runs(args, args.fit_out / "checkpoint")


if __name__ == "__main__":
    main()
