"""Can a user find out on their own data where pairs pay? ``synthaug trial`` on 33 (or 83) annotated cases (issue 31).

The scarcity matrix says `bus` pairs pay on top of ordinary augmentation with 10% of the BUSI train part
(33 cases) and not detectably with 25% or more. A user has no matrix: they have their cases and
``synthaug trial``. This script hands the trial what such a user has and checks whether it says the same:

- ``imagesTr``: the benchmark's 10% draw of its train part for ``--subset-seed`` (the same 33 cases as
  ``seg.py --real-fraction 0.1 --seed S``); the trial carves its own validation from them, as a user's would
  (the matrix had 83 validation cases);
- ``imagesTs``: the benchmark's internal test (104 BUSI cases), so the trial's test part is the matrix's;
- ``--external``: STU (42 cases).

Then it runs ``synthaug trial`` (resumable: rerun the same command) and writes its report into
``benchmarks/results/<name>.md`` / ``.json`` / ``.png`` with the matrix's numbers for the same seed beside it.

    OMP_NUM_THREADS=1 python benchmarks/trial_scarce.py --raw /work/runs/raw --out /work/runs/trial_busi10s0

``--fraction 0.25`` does the same with the 25% draw (83 cases), where the matrix finds pairs level with ordinary
augmentation on STU: the trial's "no gain" side.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench.driver import benchmark_splits  # noqa: E402
from benchmarks.common import RESULTS, busi_subset_folder, write_results  # noqa: E402
from synthaug.evaluation.splits import real_fraction_subset  # noqa: E402
from synthaug.io.public_sets import convert_stu, raw_dataset_name  # noqa: E402
from synthaug.paths import data_root  # noqa: E402

FRACTION_IDS = {0.1: 910, 0.25: 911}
STU_ID = 912


def subset_folder(raw_parent: Path, fraction: float, subset_seed: int) -> Path:
    """The fraction's draw as imagesTr and the benchmark's internal test as imagesTs (written once, then reused)."""
    sets = benchmark_splits(128, None, external=False)["sets"]
    train = {r.case_id for r in real_fraction_subset(sets["train"], fraction, subset_seed).records}
    return busi_subset_folder(raw_parent, FRACTION_IDS[fraction], f"BUSI{round(fraction * 100)}s{subset_seed}", train,
                              {r.case_id for r in sets["internal"].records}, size=128,
                              description=f"BUSI train: the benchmark's {fraction:.0%} draw (subset seed "
                                          f"{subset_seed}) as imagesTr, its internal test as imagesTs")


def stu_folder(raw_parent: Path) -> Path:
    folder = raw_parent / raw_dataset_name(STU_ID, "STU")
    return folder if (folder / "dataset.json").is_file() else convert_stu(data_root() / "STU", raw_parent, STU_ID,
                                                                          size=128)


def matrix_seed(fraction: float, seed: int) -> dict[str, dict[str, float]]:
    """The committed matrix's DSC per condition for one training seed (validation, internal test, STU)."""
    path = RESULTS / f"seg_scarcity_f{round(fraction * 100)}.json"
    if not path.is_file():
        return {}
    runs = json.loads(path.read_text(encoding="utf-8"))["runs"]
    return {r["condition"]: {k: r["metrics"][k]["dsc"] for k in ("val", "internal", "external") if k in r["metrics"]}
            for r in runs if r["seed"] == seed}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fraction", type=float, default=0.1, choices=sorted(FRACTION_IDS))
    ap.add_argument("--subset-seed", type=int, default=0)
    ap.add_argument("--raw", type=Path, default=Path("runs/raw"), help="where the raw folders are written")
    ap.add_argument("--out", type=Path, default=Path("runs/trial_busi10s0"), help="the trial's folder")
    ap.add_argument("--minutes", type=float, default=None,
                    help="the trial's time budget (default none: its full 30 epochs and 3 seeds, whatever the load)")
    ap.add_argument("--generator", default="bus")
    ap.add_argument("--name", default=None, help="results name (default trial_busi<percent>s<subset seed>)")
    args = ap.parse_args(argv)
    raw, stu = subset_folder(args.raw, args.fraction, args.subset_seed), stu_folder(args.raw)
    cmd = [sys.executable, "-m", "synthaug.cli", "trial", str(raw), "--external", str(stu), "--out", str(args.out),
           "--generator", args.generator] + (["--minutes", str(args.minutes)] if args.minutes else [])
    print(" ".join(cmd), flush=True)
    if subprocess.call(cmd):
        raise SystemExit("synthaug trial failed: see its output above")
    name = args.name or f"trial_busi{round(args.fraction * 100)}s{args.subset_seed}"
    shutil.copyfile(args.out / "trial.png", RESULTS / f"{name}.png")
    matrix = matrix_seed(args.fraction, args.subset_seed)
    trial_md = (args.out / "trial.md").read_text(encoding="utf-8").replace("(trial.png)", f"({name}.png)")
    payload = {"trial": json.loads((args.out / "trial.json").read_text(encoding="utf-8")), "matrix_same_seed": matrix}
    write_results(name, payload, trial_md.rstrip() + "\n\n" + compare_md(matrix, args.fraction, args.subset_seed))
    print(f"wrote {RESULTS / name}.md, .json and .png", flush=True)


def compare_md(matrix: dict, fraction: float, seed: int) -> str:
    if not matrix:
        return "The matrix has no run of this seed yet."
    rows = [f"## The scarcity matrix on the same {fraction:.0%} draw (seed {seed}, one run each)", "",
            "The matrix trained with 83 validation cases and 40 epochs (at least 20 batches each); the trial "
            "above had only what the user has. DSC:", "", "| condition | validation | internal test | STU |",
            "|---|---|---|---|"]
    rows += [f"| {c} | " + " | ".join(f"{m[k]:.3f}" if k in m else "–" for k in ("val", "internal", "external"))
             + " |" for c, m in matrix.items()]
    return "\n".join(rows)


if __name__ == "__main__":
    main()
