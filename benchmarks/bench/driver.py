"""Command line, plan and ``main`` of the benchmark matrix (models x conditions x seeds) for any ``Task``:
what is BUSI- and STU-specific (the split, the generator's fairness check, the results folder) over the
engine in ``synthaug.evaluation``."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, busi_sets, sampler_options, stu_set, write_results
from synthaug.errors import SynthaugError
from synthaug.evaluation.banks import bank_need, ensure_bank, generator_record, training_case_ids
from synthaug.evaluation.conditions import COPY_PASTE, parse_conditions
from synthaug.evaluation.figures import conditions_figure, curves_figure, ratio_curve
from synthaug.evaluation.report import ROLES, TESTS, markdown, summarise
from synthaug.evaluation.runs import Task, differing_settings, import_runs, run_matrix
from synthaug.evaluation.splits import SPLIT_SEED, cap_cases, class_shares, stratified_split
from synthaug.gate import DEFAULT_TRIES
from synthaug.paths import data_root
from synthaug.precision import use_bf16


def parse_args(task: Task, argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=getattr(sys.modules.get("__main__"), "__doc__", None),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generator", help="registered name or checkpoint folder (trained on the BUSI train split only)")
    ap.add_argument("--profile", choices=sorted(task.profiles), default="quick")
    ap.add_argument("--models", help="comma-separated, overrides the profile")
    ap.add_argument("--conditions", help="comma-separated, e.g. 'real,ordinary,copy-paste 100%%,bus 25%%,"
                                         "bus 25%% + ordinary' (earlier protocol: 0%%, ordinary, N%%)")
    ap.add_argument("--seeds", help="comma-separated integers")
    ap.add_argument("--epochs", type=int, help="epochs per run (drops the profile's step budget)")
    ap.add_argument("--train-steps", type=int, help="optimiser steps per run, the same for every condition")
    ap.add_argument("--patience", type=int, help="converged profile: stop after this many epochs without a better "
                                                  "validation score")
    ap.add_argument("--real-fraction", type=float, help="train on this stratified fraction of the real train part "
                                                        "(nested across fractions, fixed per seed); validation and "
                                                        "tests unchanged")
    ap.add_argument("--subset-seed", type=int, help="draw the real fraction with this seed for every training seed "
                                                    "(a generator fit on that one subset: the own-data control)")
    ap.add_argument("--min-batches", type=int, help="stretch short epochs to this many batches (a floor of "
                                                    "optimiser steps for small real fractions)")
    ap.add_argument("--size", type=int, help="image side in pixels")
    ap.add_argument("--cases", type=int, help="cap every split at this many cases")
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--no-bf16", action="store_true", help="train and predict in float32")
    ap.add_argument("--steps", type=int, help="sampler steps for the bank (default: the checkpoint's)")
    ap.add_argument("--scheduler", help="ddim, dpm++ or unipc (default: the checkpoint's)")
    ap.add_argument("--sampler-option", action="append", default=[], metavar="KEY=VALUE",
                    help="a generator keyword for the bank, e.g. mask_guidance=4 (PIG); part of the bank's key")
    ap.add_argument("--gate-dice", type=float, help="quality gate for the bank: keep pairs the judge of the train "
                                                    "part scores at Dice >= T (synthaug.gate)")
    ap.add_argument("--gate-tries", type=int, default=DEFAULT_TRIES, help="draws per pair before the gate gives up")
    ap.add_argument("--bank-batch-size", type=int, default=16)
    ap.add_argument("--work", type=Path, default=Path("runs/bench_work"), help="bank and per-run JSON cache")
    ap.add_argument("--results-dir", type=Path, default=RESULTS)
    ap.add_argument("--name", help="results file stem (default <task>_<generator>_<profile>)")
    ap.add_argument("--import-runs", type=Path, action="append", default=[], metavar="RESULTS_JSON",
                    help="first copy the finished runs a results JSON records (same task, profile, settings and "
                         "bank) into --work: continues a matrix on a machine without its work folder; repeatable "
                         "(a report and the pending runs of benchmarks/keep_runs.py)")
    ap.add_argument("--report-only", action="store_true", help="write the report from the runs done, train nothing")
    return ap.parse_args(argv)


def make_plan(task: Task, args) -> dict:
    """Profile defaults, overridden by whatever was given on the command line.

    ``settings`` (hashed into the run folder) holds only what changes a run:
    the earlier profiles keep exactly their earlier keys, so their runs are reused.
    """
    p = dict(task.profiles[args.profile])
    if args.models:
        p["models"] = [x.strip() for x in args.models.split(",") if x.strip()]
    if args.conditions:
        p["conditions"] = args.conditions
    if args.seeds:
        p["seeds"] = [int(x) for x in args.seeds.split(",") if x.strip()]
    if args.epochs is not None:
        p["train_steps"] = None
    for key in ("epochs", "train_steps", "patience", "size", "cases", "batch_size", "lr", "steps", "scheduler",
                "real_fraction", "min_batches", "subset_seed"):
        if getattr(args, key, None) is not None:
            p[key] = getattr(args, key)
    settings = {k: p[k] for k in ("epochs", "size", "cases", "batch_size", "lr")}
    if p.get("train_steps"):
        settings["train_steps"] = p["train_steps"]
    settings["bf16"] = use_bf16(not args.no_bf16)  # as carried out: float32 where the CPU has no native bf16
    if p.get("select"):
        settings["select"] = p["select"]
        settings["patience"] = p.get("patience")
    for key in ("real_fraction", "min_batches"):  # only when set, so the earlier runs' settings keep their hash
        if p.get(key) not in (None, 1.0):
            settings[key] = p[key]
    if p.get("subset_seed") is not None:
        settings["subset_seed"] = p["subset_seed"]
    return {"models": p["models"], "conditions": parse_conditions(p["conditions"]), "seeds": p["seeds"],
            "settings": settings, "steps": p["steps"], "scheduler": p["scheduler"], "chunk": p["chunk"]}


def busi_train_ids() -> set[str]:
    """Case ids of the BUSI train split (split.json), the only cases a fair generator may have seen."""
    from synthaug.io.public_sets import busi_case_splits

    return {c for c, s in busi_case_splits(data_root() / "BUSI").items() if s == "train"}


def busi_generator_record(ref: str) -> dict:
    """``generator_record`` plus the benchmark's fairness check: the benchmark is only fair for a generator
    trained on the BUSI train split alone, confirmed when the case ids it records are non-empty and inside
    that split. Anything less is flagged in the report, not refused: the numbers are still informative."""
    record = generator_record(ref)
    trained_on, train_ids = training_case_ids(record["info"]), busi_train_ids()
    return {**record, "busi_train_cases": len(train_ids),
            "busi_train_only": bool(trained_on) and trained_on <= train_ids}


def seen_cases(record: dict, sets: dict) -> dict:
    """How many cases of each evaluation set the generator trained on ({} when it records no case ids): a
    generator fit on a subset of the train part (the own-data control) has seen neither validation nor tests."""
    trained_on = training_case_ids(record["info"])
    return {name: len(trained_on & {r.case_id for r in ds.records})
            for name, ds in sets.items() if name != "train"} if trained_on else {}


def benchmark_splits(size: int, cases: int | None, external: bool) -> dict:
    """{"sets": {"train", "val", "internal"(, "external")}, "names": what each one is}."""
    sets = busi_sets(size=size, val_fraction=0.2, seed=SPLIT_SEED)
    if sets["test"] is None:
        train, val = stratified_split(sets["train"], 0.2, SPLIT_SEED)
        internal = sets["val"]
        val_name = "20% of the remaining BUSI train part (stratified), apart from the internal test"
    else:
        train, val, internal = sets["train"], sets["val"], sets["test"]
        val_name = "20% of the BUSI train split (stratified)"
    data = {"train": cap_cases(train, cases), "val": cap_cases(val, cases), "internal": cap_cases(internal, cases)}
    names = {"val": val_name, "internal": sets["internal_test_name"], "test_withheld": sets["test"] is None}
    if external:
        data["external"] = cap_cases(stu_set(size), cases)
        names["external"] = "STU-Hospital"
    return {"sets": data, "names": names}


def check_generator(task: Task, plan: dict, ref: str | None) -> dict | None:
    """The generator's record, or a clear refusal when the requested conditions cannot use it."""
    if task.needs_label and any(c.source == COPY_PASTE for c in plan["conditions"]):
        raise SystemExit(f"copy-paste composites hold two lesions and no single tumour type: the {task.name} "
                         "benchmark cannot use them")
    if not any(c.synthetic for c in plan["conditions"]):
        return busi_generator_record(ref) if ref else None
    if not ref:
        raise SystemExit("--generator is required for synthetic conditions")
    record = busi_generator_record(ref)
    wrong = sorted({c.generator for c in plan["conditions"] if c.generator and c.generator != record["generator"]})
    if wrong:
        raise SystemExit(f"conditions name the generator(s) {wrong} but --generator {ref} is a "
                         f"{record['generator']!r} checkpoint: name the conditions '{record['generator']} N%'")
    if task.needs_label and "label" not in record["conditions"]:
        raise SystemExit(f"{ref} is not class-conditional (its conditions: {record['conditions'] or 'none'}): the "
                         f"{task.name} benchmark needs every synthetic image generated for a tumour type, and never "
                         "uses pseudo-labels. Use a generator trained with class_conditional: true.")
    if not record["busi_train_only"]:
        print(f"WARNING: {record['path']} does not record training on the BUSI train split only\n"
              f"  (synthaug.json training case ids; model card data: {record['card_data']}); the report flags it.",
              file=sys.stderr, flush=True)
    return record


def results_name(task: Task, args, record: dict | None) -> str:
    """The results file stem: ``--name`` or ``<task>_<generator>_<profile>``."""
    return args.name or f"{task.name}_{Path(record['ref']).name if record else 'real'}_{args.profile}"


def recorded_runs(paths) -> list[dict]:
    """The runs the results JSONs among ``paths`` record (missing files hold none)."""
    return [run for path in paths if Path(path).is_file()
            for run in json.loads(Path(path).read_text(encoding="utf-8")).get("runs", [])]


def adopt_recorded_precision(plan: dict, sources) -> None:
    """``--report-only`` trains nothing, so it reports the runs in the precision they trained in: planned by
    this machine, a CPU without native bf16 would ask for float32 runs and find none of a bf16 matrix's."""
    recorded = {run.get("settings", {}).get("bf16") for run in recorded_runs(sources)} - {None}
    if len(recorded) == 1:
        plan["settings"]["bf16"] = recorded.pop()


def recorded_bank(report: Path, key: str) -> dict | None:
    """How the report records the bank ``key`` was made (pairs, sampler), for a report rewritten without it."""
    if not report.is_file():
        return None
    bank = json.loads(report.read_text(encoding="utf-8")).get("bank") or {}
    return bank if Path(bank.get("folder", "")).name == key else None


def refuse_dropping_runs(report: Path, plan: dict, runs: list[dict], work: Path) -> None:
    """A report rewritten from ``--work`` must keep every finished run it records for this plan's models,
    conditions and seeds: a work folder without them (a new machine, other settings) would otherwise leave
    an emptier report in its place."""
    wanted = {c.name for c in plan["conditions"]}
    have = {(r["model"], r["condition"], r["seed"]) for r in runs}
    lost = [r for r in recorded_runs([report]) if r["model"] in plan["models"] and r["condition"] in wanted
            and r["seed"] in plan["seeds"] and (r["model"], r["condition"], r["seed"]) not in have]
    if lost:
        differ = sorted({k for r in lost for k in differing_settings(r["settings"], plan["settings"])})
        why = f"they trained with other settings ({', '.join(differ)})" if differ else f"they are not in {work}"
        raise SynthaugError(f"{report}: --report-only would drop {len(lost)} finished runs it records: {why}; "
                            f"nothing written (add --import-runs {report} to take them into the work folder)")


def main(task: Task, argv=None) -> Path:
    """Plan, data, bank, runs (skipping those done), then the report; returns the results JSON path."""
    try:
        return _main(task, argv)
    except SynthaugError as e:  # the engine's refusals: one line, as before the move into the package
        raise SystemExit(str(e)) from None


def _main(task: Task, argv=None) -> Path:
    t0 = time.time()
    args = parse_args(task, argv)
    plan = make_plan(task, args)
    record = check_generator(task, plan, args.generator)
    report = args.results_dir / f"{results_name(task, args, record)}.json"
    if args.report_only and not args.no_bf16:
        adopt_recorded_precision(plan, [report, *args.import_runs])
    split = benchmark_splits(plan["settings"]["size"], plan["settings"]["cases"], task.external)
    if record:
        record["seen_cases"] = seen_cases(record, split["sets"])
    if not split["names"]["test_withheld"]:  # other internal-test cases: runs made without them are not reused
        plan["settings"]["internal_test"] = split["names"]["internal"]
    shares = class_shares(split["sets"]["train"], bool(record) and "label" in record["conditions"])
    banks = {}  # by background: "synthetic" (full synthetic pairs) and "real" (repainted train-part images)
    for background in ("synthetic", "real"):
        if any(c.synthetic and c.background == background for c in plan["conditions"]):
            need = bank_need(len(split["sets"]["train"]), plan["conditions"], shares, background)
            gate = ({"dice": args.gate_dice, "real": split["sets"]["train"], "tries": args.gate_tries}
                    if args.gate_dice is not None else None)
            banks[background] = ensure_bank(record, args.work, need, plan["steps"], plan["scheduler"],
                                            plan["chunk"], args.bank_batch_size, generate=not args.report_only,
                                            backgrounds=split["sets"]["train"] if background == "real" else None,
                                            options=sampler_options(args.sampler_option), gate=gate,
                                            bf16=plan["settings"]["bf16"] if args.report_only else None)
            plain = [c for c in plan["conditions"] if c.bank is None]
            banks[background].base = bank_need(len(split["sets"]["train"]), plain, shares, background)
            banks[background].n_real = len(split["sets"]["train"])
    for source in args.import_runs:
        n = import_runs(source, task, plan, banks, args.work, args.profile, log=print)
        print(f"imported {n} finished runs from {source}", flush=True)
    runs = run_matrix(task, plan, split["sets"], banks, shares, args.work, args.profile, args.report_only)
    if args.report_only:
        refuse_dropping_runs(report, plan, runs, args.work)
    bank = banks.get("synthetic") or banks.get("real")
    if args.report_only and bank and not any(bank.entries.values()):  # the bank stayed on the machine that made it
        bank.record = recorded_bank(report, bank.key) or bank.record
    return write_report(task, args, plan, split, record, bank, shares, runs, t0)


def write_report(task, args, plan: dict, split: dict, record, bank, shares: dict, runs: list[dict],
                 t0: float) -> Path:
    """results/<name>.json (every run, the summary, provenance), .md (the tables) and .png (figure)."""
    summary = summarise(task, runs, plan["models"], plan["conditions"])
    name = results_name(task, args, record)
    figure = args.results_dir / f"{name}.png"
    figure.parent.mkdir(parents=True, exist_ok=True)
    panels = {s: f"{ROLES[s]}: {split['names'][s]}" for s in TESTS if s in split["sets"]}
    legacy = all(c.generator is None for c in plan["conditions"]) and plan["settings"].get("select") != "best-val"
    if legacy:
        ratio_curve(summary["cells"], plan["models"], [(c.name, c.ratio, c.augment) for c in plan["conditions"]
                                                       if c.synthetic or c.ratio == 0],
                    task.metrics[0], task.metric_labels[task.metrics[0]], panels, figure, title=task.title)
    else:
        conditions_figure(task, summary, plan, panels, figure)
    curves = curves_figure(task, runs, plan, args.results_dir / f"{name}_curves.png")
    per_run = [r["seconds"] for r in runs]
    meta = {"profile": args.profile, "generator": record, "bank": bank.record if bank else None,
            "split_names": split["names"], **{f"n_{k}": len(v) for k, v in split["sets"].items()},
            "runs_done": len(runs), "runs_planned": len(plan["models"]) * len(plan["seeds"]) * len(plan["conditions"]),
            "seconds_per_run": f"{np.mean(per_run):.0f} ± {np.std(per_run):.0f} s" if runs else "–",
            "run_seconds_total": float(np.sum(per_run)), "bank_seconds": bank.seconds_generating if bank else 0.0,
            "wall_seconds": time.time() - t0}
    payload = {"task": task.name, **meta, "class_shares": {str(k): v for k, v in shares.items()},
               "models": plan["models"], "conditions": [c.__dict__ for c in plan["conditions"]], "seeds": plan["seeds"],
               "settings": plan["settings"], "summary": summary, "figure": figure.name,
               "curves_figure": curves.name if curves else None, "runs": runs}
    text = markdown(task, plan, summary, meta)
    if curves:
        text += f"\n\nValidation curves (seed {min(r['seed'] for r in runs if r.get('curve'))}): `{curves.name}`."
    out = write_results(name, payload, text, out_dir=args.results_dir)
    print(f"wrote {out} and {figure} in {meta['wall_seconds']:.0f} s", flush=True)
    return out
