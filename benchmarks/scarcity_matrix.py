"""The scarcity matrix (issue 31, item 5): real fractions x conditions x seeds, resumable, then the summary.

Runs ``benchmarks/seg.py --profile scarcity`` (the ImageNet EfficientNet-Lite0 U-Net) seed by seed,
each seed over the fractions (25% first, then 10%, then 100%), so every finished seed adds a point
to each fraction's report. At 25% and the first ``--select-seeds`` seeds it also trains the schedule
candidates (large banks, synthetic pretraining, a decaying share); once those runs exist it picks
the candidate with the best mean *validation* DSC (never a test score), records the pick in
``seg_scarcity_schedule_pick.json`` and adds it to every fraction and seed (the seeds already done too:
each step runs every seed up to the current one, and finished runs are skipped). After each seed it
writes each fraction's report and the summary (``benchmarks/scarcity.py``).

With ``--descriptor-generator`` (issue 34) it also trains, at 25% and 100% real, that checkpoint's
``bus 100%`` (descriptors drawn at the training shares; report ``seg_scarcity_desc_f*``) and a hard mix
(low-contrast, indistinct lesions oversampled): the mixes of ``HARD_MIXES`` run at 25% on the selection
seeds, the one with the best mean validation DSC is recorded in ``seg_scarcity_hard_pick.json`` and runs
on every seed (reports ``seg_scarcity_hard_f*``). ``real`` runs are shared with the main reports.
``--arm NAME=CHECKPOINT`` (repeatable) adds another checkpoint's ``bus 100%`` at 25% and 100% real in the
same way (reports ``seg_scarcity_NAME_f*``), e.g. a retrained candidate for the default ``bus``;
``--arm-fractions`` and ``--arm-conditions`` change where and how (e.g. ``bus 100% + ordinary`` at 10%,
beside the headline comparison; ``real`` and ``ordinary`` runs do not depend on the generator and are shared).

Rerunning the same command skips finished runs and resumes a killed one from its last epoch; a
second process on the other core takes the runs the first one does not hold (file locks). On a machine
without the work folder, ``--import-committed`` first copies the finished runs of the committed reports
into it, and those of an unfinished seed that ``benchmarks/keep_runs.py`` kept (only the banks are made again).

A machine of another precision (bf16 / float32) cannot continue the committed matrix (``check_precision``);
``--results-dir DIR`` starts a separate one there, with its own reports and summary, optionally on fewer
``--fractions`` and ``--conditions`` (e.g. the 10% headline comparison). It reuses the committed schedule
and hard-mix picks: those were made once, on validation.

    OMP_NUM_THREADS=1 TQDM_DISABLE=1 python benchmarks/scarcity_matrix.py --generator checkpoints/bus-busi-128 \\
        --work /work/runs/bench_work
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import scarcity, seg  # noqa: E402
from benchmarks.common import RESULTS, pending_runs  # noqa: E402

FRACTIONS = (0.25, 0.1, 1.0)
# `bus 100% + ordinary`: pairs on top of ordinary augmentation, as SyntheticMix is used (synthetic items go
# through the same transform); with the pretrained encoder ordinary augmentation alone is +0.08 DSC on the
# internal test at 100% real (seed 0), so "do pairs add to it?" is the question a user has.
BASE = ["real", "ordinary", "copy-paste 100%", "bus 100%", "bus 100% + ordinary"]
CANDIDATES = ["bus 100% bank 400%", "bus 100% bank 1000%", "bus 100% bank 1000% pretrain", "bus 100% bank 1000% decay"]
PICK = RESULTS / "seg_scarcity_schedule_pick.json"
DESC_FRACTIONS = (0.25, 1.0)
HARD_MIXES = {"hard-half": "echo=isoechoic:0.5,hypoechoic:0.5;margin=indistinct:0.5,circumscribed:0.25,irregular:0.25",
              "hard-all": "echo=isoechoic:1;margin=indistinct:1"}
HARD_PICK = RESULTS / "seg_scarcity_hard_pick.json"
# arm reports' labels in the summary: `lw` is the descriptor checkpoint's arm at 10%, run under another name
ARM_LABELS = {"desc": "bus-desc", "lw": "bus-desc", "hard": "bus-desc hard mix"}
NOT_ARMS = {"own", *HARD_MIXES}  # the own-data control (another subset draw) and the hard-mix candidates


def report_name(fraction: float, arm: str = "") -> str:
    """Results stem of one fraction's report; ``arm`` names another generator's (``desc``, a hard mix)."""
    return f"seg_scarcity_{arm + '_' if arm else ''}f{round(fraction * 100):d}"


def seg_args(args, fraction: float, conditions: list[str], seeds: str, report_only: bool = False,
             generator: str | None = None, arm: str = "", mix: str | None = None,
             results: Path | None = None) -> list[str]:
    """``seg.py`` arguments; ``arm`` names another generator's reports (``desc``, a hard mix), ``mix`` its
    descriptor request (a sampler option, so part of its bank's key); reports go to ``results`` (default
    the matrix's folder)."""
    argv = ["--profile", "scarcity", "--generator", generator or args.generator, "--work", str(args.work),
            "--conditions", ",".join(conditions), "--seeds", seeds, "--real-fraction", str(fraction),
            "--name", report_name(fraction, arm), "--results-dir", str(results or results_dir(args))]
    argv += ["--sampler-option", f"descriptors={mix}"] if mix else []
    return argv + (["--report-only"] if report_only else [])


def pick_schedule(select_seeds: list[int]) -> str | None:
    """The candidate with the best mean validation DSC at 25% over the selection seeds (None until all ran)."""
    if PICK.is_file():
        return json.loads(PICK.read_text(encoding="utf-8"))["pick"]
    path = RESULTS / f"{report_name(0.25)}.json"
    if not path.is_file():
        return None
    runs = json.loads(path.read_text(encoding="utf-8"))["runs"]
    val = {c: [r["metrics"]["val"]["dsc"] for r in runs if r["condition"] == c and r["seed"] in select_seeds]
           for c in CANDIDATES + ["bus 100%"]}
    if any(len(v) < len(select_seeds) for v in val.values()):
        return None
    means = {c: sum(v) / len(v) for c, v in val.items()}
    pick = max(CANDIDATES, key=means.get)
    PICK.write_text(json.dumps({"pick": pick, "on": "mean validation DSC at 25% real", "seeds": select_seeds,
                                "validation_means": means}, indent=2) + "\n", encoding="utf-8")
    print(f"schedule picked on validation: {pick} ({means})", flush=True)
    return pick


def pick_hard(select_seeds: list[int]) -> str | None:
    """The hard mix with the best mean validation DSC at 25% over the selection seeds (None until all ran)."""
    if HARD_PICK.is_file():
        return json.loads(HARD_PICK.read_text(encoding="utf-8"))["pick"]
    val = {}
    for name in HARD_MIXES:
        path = RESULTS / f"{report_name(0.25, name)}.json"
        runs = json.loads(path.read_text(encoding="utf-8"))["runs"] if path.is_file() else []
        val[name] = [r["metrics"]["val"]["dsc"] for r in runs if r["condition"] == "bus 100%" and r["seed"] in select_seeds]
        if len(val[name]) < len(select_seeds):
            return None
    means = {k: sum(v) / len(v) for k, v in val.items()}
    pick = max(means, key=means.get)
    HARD_PICK.write_text(json.dumps({"pick": pick, "mix": HARD_MIXES[pick], "on": "mean validation DSC at 25% real",
                                     "seeds": select_seeds, "validation_means": means}, indent=2) + "\n",
                         encoding="utf-8")
    print(f"hard mix picked on validation: {pick} ({means})", flush=True)
    return pick


ARM_CONDITIONS = ["real", "bus 100%"]
RESERVED_ARMS = {"desc", "hard", *HARD_MIXES}


def parse_arms(specs: list[str] | None) -> dict[str, str]:
    """``--arm NAME=CHECKPOINT`` values -> {name: checkpoint}; a name is its reports' stem part."""
    arms = {}
    for spec in specs or []:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path or not all(c.isalnum() or c == "-" for c in name):
            raise SystemExit(f"--arm {spec!r}: write NAME=CHECKPOINT (NAME: letters, digits, '-')")
        if name in RESERVED_ARMS or name in arms:
            raise SystemExit(f"--arm {name}: the name is taken (reserved: {', '.join(sorted(RESERVED_ARMS))})")
        arms[name] = path
    return arms


def run_arm(args, fraction: float, arm: str, generator: str, mix: str | None, seeds: list[int],
            report_only: bool, conditions: list[str] = ARM_CONDITIONS) -> None:
    if seeds:
        seg.main(seg.SEGMENTATION, seg_args(args, fraction, conditions, ",".join(map(str, seeds)), report_only,
                                            generator=generator, arm=arm, mix=mix))


def checkpoint_arm(args, arm: str, generator: str, seed: int, done: list[int], fractions=DESC_FRACTIONS,
                   conditions: list[str] = ARM_CONDITIONS) -> None:
    """One checkpoint's ``bus 100%`` (default draws) for one seed at 25% and 100% (or ``fractions``, under
    ``conditions``), then its reports over ``done``."""
    for fraction in fractions:
        run_arm(args, fraction, arm, generator, None, [seed], args.report_only, conditions)
        run_arm(args, fraction, arm, generator, None, done, True, conditions)


def fraction_reports(results: Path, fractions) -> list[str]:
    """The summary's ``FRACTION=PATH`` of the main conditions: the fractions this invocation ran and every other
    fraction's report already in ``results`` (a ``--fractions`` subset keeps the rest of the summary)."""
    return [f"{f}={results / (report_name(f) + '.json')}" for f in sorted(FRACTIONS)
            if f in fractions or (results / (report_name(f) + ".json")).is_file()]


def arm_reports(results: Path) -> list[str]:
    """Every arm report in ``results`` as the summary's ``FRACTION=PATH@LABEL``: whichever invocation
    rewrites the summary (the main matrix, an ``--arm`` run) keeps the arms the others ran."""
    found = []
    for path in sorted(results.glob("seg_scarcity_*_f*.json")):
        match = re.fullmatch(r"seg_scarcity_([a-z0-9-]+)_f(10|25|100)", path.stem)
        if match and match[1] not in NOT_ARMS:
            found.append(f"{int(match[2]) / 100}={path}@{ARM_LABELS.get(match[1], 'bus-' + match[1])}")
    return found


def arm_setting(args) -> tuple[tuple[float, ...], list[str]]:
    """The fractions and conditions of the ``--arm`` checkpoints (default: 25% and 100%, ``real`` and
    ``bus 100%``)."""
    spec = getattr(args, "arm_fractions", None)
    fractions = tuple(float(f) for f in spec.split(",")) if spec else DESC_FRACTIONS
    if not fractions or any(f not in FRACTIONS for f in fractions):
        raise SystemExit(f"--arm-fractions {spec!r}: choose from {', '.join(map(str, FRACTIONS))}")
    spec = getattr(args, "arm_conditions", None)
    return fractions, (chosen_conditions(spec, None, "--arm-conditions") if spec else ARM_CONDITIONS)


def descriptor_arms(args, seed: int, select: list[int], done: list[int]) -> None:
    """Issue 34's conditions for one seed (the descriptor checkpoint's default draws, then its hard mix),
    then their reports over the seeds ``done``."""
    gen = args.descriptor_generator

    def run(fraction: float, arm: str, mix: str | None, seeds: list[int], report_only: bool) -> None:
        run_arm(args, fraction, arm, gen, mix, seeds, report_only)

    checkpoint_arm(args, "desc", gen, seed, done)
    if not pick_hard(select):
        for name, mix in HARD_MIXES.items():
            if seed in select:
                run(0.25, name, mix, [seed], args.report_only)
            run(0.25, name, mix, [s for s in done if s in select], True)
    hard = pick_hard(select)
    if hard:
        for fraction in DESC_FRACTIONS:
            run(fraction, "hard", HARD_MIXES[hard], [seed], args.report_only)
            run(fraction, "hard", HARD_MIXES[hard], done, True)


def import_committed(args) -> None:
    """Copy the finished runs of the committed reports into ``--work`` (a new machine): every fraction's
    report and, with ``--descriptor-generator``, each of issue 34's arms (default draws, the hard mixes,
    the picked one), and the pending runs of ``benchmarks/keep_runs.py``; reports go to a scratch folder,
    so the committed ones are left as they are."""
    arms = [("", args.generator, BASE + CANDIDATES, FRACTIONS, None)]
    if args.descriptor_generator:
        arms.append(("desc", args.descriptor_generator, ARM_CONDITIONS, DESC_FRACTIONS, None))
        arms += [(name, args.descriptor_generator, ARM_CONDITIONS, (0.25,), mix) for name, mix in HARD_MIXES.items()]
        if HARD_PICK.is_file():
            mix = HARD_MIXES[json.loads(HARD_PICK.read_text(encoding="utf-8"))["pick"]]
            arms.append(("hard", args.descriptor_generator, ARM_CONDITIONS, DESC_FRACTIONS, mix))
    arm_fractions, arm_conditions = arm_setting(args)
    arms += [(name, path, arm_conditions, arm_fractions, None) for name, path in parse_arms(args.arm).items()]
    with tempfile.TemporaryDirectory() as scratch:
        for arm, generator, conds, fractions, mix in arms:
            for fraction in fractions:
                report = results_dir(args) / f"{report_name(fraction, arm)}.json"
                sources = ([report] if report.is_file() else []) + pending_runs(RESULTS)
                if sources:
                    argv = seg_args(args, fraction, conds, args.seeds, True, generator=generator, arm=arm, mix=mix,
                                    results=Path(scratch))
                    seg.main(seg.SEGMENTATION, argv + sum((["--import-runs", str(s)] for s in sources), []))


def results_dir(args) -> Path:
    return getattr(args, "results_dir", None) or RESULTS


def check_precision(reports: list[Path], here: bool) -> None:
    """Refuse to continue a matrix in another precision: its runs would not be imported and every run would
    train again, a different setting beside the recorded ones, in the same reports (a CPU without native
    bf16 trains in float32; emulated bf16 measured 21x slower than float32 there, session 23)."""
    for report in reports:
        if not report.is_file():
            continue
        runs = json.loads(report.read_text(encoding="utf-8")).get("runs", [])
        recorded = {r.get("settings", {}).get("bf16") for r in runs} - {None}
        if recorded and here not in recorded:
            this = "bf16" if here else "float32 (no native bf16 on this CPU)"
            raise SystemExit(f"{report.name}: its runs trained with bf16={recorded.pop()}, this machine would train "
                             f"in {this}; continue the matrix on a machine like theirs, or start a separate one "
                             "with --results-dir DIR")


def chosen_conditions(spec: str | None, pick: str | None, option: str = "--conditions") -> list[str]:
    """``--conditions`` (base condition names and ``pick``, the picked schedule) -> the condition list."""
    if spec is None:
        return BASE + ([pick] if pick else [])
    names = [c.strip() for c in spec.split(",") if c.strip()]
    unknown = [c for c in names if c not in BASE and c != "pick"]
    if unknown or not names:
        raise SystemExit(f"{option} {spec!r}: choose from {', '.join(BASE)}, pick")
    if "pick" in names and not pick:
        raise SystemExit(f"{option} pick: no schedule is picked yet (the main matrix picks it at 25%)")
    return [pick if c == "pick" else c for c in names]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generator", default="checkpoints/bus-busi-128")
    ap.add_argument("--work", type=Path, default=Path("runs/bench_work"))
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--select-seeds", default="0,1", help="seeds the schedule candidates run at 25%% to pick one")
    ap.add_argument("--fractions", default=",".join(map(str, FRACTIONS)), help="real fractions, in this order")
    ap.add_argument("--conditions", default=None,
                    help="comma-separated subset of the base conditions, 'pick' for the picked schedule "
                         "(default: all of them and the pick)")
    ap.add_argument("--results-dir", type=Path, default=None,
                    help="a separate matrix: its reports and summary go here (default benchmarks/results, the "
                         "committed matrix)")
    ap.add_argument("--descriptor-generator", help="issue 34: a bus checkpoint trained on descriptor prompts")
    ap.add_argument("--arms-only", action="store_true",
                    help="only the arms (--descriptor-generator, --arm), for a second process on the other core")
    ap.add_argument("--arm", action="append", metavar="NAME=CHECKPOINT",
                    help="another checkpoint's bus 100%% at 25%% and 100%% real (reports seg_scarcity_NAME_f*)")
    ap.add_argument("--arm-fractions", default=None, help="real fractions of the --arm checkpoints (default 0.25,1.0)")
    ap.add_argument("--arm-conditions", default=None,
                    help="conditions of the --arm checkpoints, base names (default 'real,bus 100%%'); 'real' and "
                         "'ordinary' runs are shared with the matrix")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--import-committed", action="store_true",
                    help="first copy the finished runs of the committed reports into --work (a new machine)")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    select = [int(s) for s in args.select_seeds.split(",")]
    fractions = [float(f) for f in args.fractions.split(",")]
    if not fractions or any(f not in FRACTIONS for f in fractions):
        raise SystemExit(f"--fractions {args.fractions!r}: choose from {', '.join(map(str, FRACTIONS))}")
    extra_arms = parse_arms(args.arm)
    arm_fractions, arm_conditions = arm_setting(args)  # a bad setting stops before anything trains
    results = results_dir(args)
    main_matrix = results.resolve() == RESULTS.resolve()
    chosen_conditions(args.conditions, pick_schedule(select))  # a bad --conditions stops before anything trains
    if args.arms_only and not (args.descriptor_generator or extra_arms):
        raise SystemExit("--arms-only runs the arms of --descriptor-generator or --arm: give one")
    if not args.report_only:
        from synthaug.precision import use_bf16

        check_precision([results / f"{report_name(f)}.json" for f in fractions], use_bf16(True))
    if args.import_committed:
        import_committed(args)
    for seed in seeds:
        done = ",".join(str(s) for s in seeds if s <= seed)
        for fraction in () if args.arms_only else fractions:
            pick = pick_schedule(select)
            if not args.report_only:  # every seed so far: the pick's earlier seeds run once it is known
                seg.main(seg.SEGMENTATION, seg_args(args, fraction, chosen_conditions(args.conditions, pick), done))
            if fraction == 0.25 and seed in select and not pick and not args.report_only and main_matrix:
                seg.main(seg.SEGMENTATION, seg_args(args, fraction, CANDIDATES, str(seed)))  # after the base runs
                # a training call's report holds only its own conditions: rewrite it whole, so the pick below
                # sees every candidate and the next fraction of this seed already runs it
                seg.main(seg.SEGMENTATION, seg_args(args, fraction, BASE + CANDIDATES, done, report_only=True))
        pick = pick_schedule(select)
        if args.descriptor_generator:
            descriptor_arms(args, seed, select, [s for s in seeds if s <= seed])
        for arm, generator in extra_arms.items():
            checkpoint_arm(args, arm, generator, seed, [s for s in seeds if s <= seed], arm_fractions, arm_conditions)
        if args.arms_only:
            continue
        for fraction in fractions:
            conditions = chosen_conditions(args.conditions, pick)
            if fraction == 0.25 and main_matrix and args.conditions is None:
                conditions = BASE + CANDIDATES
            seg.main(seg.SEGMENTATION, seg_args(args, fraction, conditions, done, report_only=True))
        reports = fraction_reports(results, fractions) + arm_reports(results)
        scarcity.main(sum((["--report", r] for r in reports), []) + ["--results-dir", str(results)])

if __name__ == "__main__":
    main()
