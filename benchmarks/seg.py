"""Synthetic-ratio benchmark for lesion segmentation (BUS paper, Table 5 and Fig. 6), and the
driver ``cls.py`` shares (only the task differs: what to build, train and measure).

Every model is trained from scratch under each condition and seed:

  0%          real train part only, no augmentation
  ordinary    real + ordinary augmentation (flip, rotation, affine, brightness)
  25% .. 200% real + ordinary augmentation + round(r x real) synthetic pairs; the
              synthetic pairs get the same augmentation (as in the BUS paper)

and measured on a validation part (to pick a ratio as a user would), on the internal
test (the BUSI test split when present; here it is withheld, so a stratified part
carved from the train split stands in, and the output says so) and, for
segmentation, on STU (external). The BUSI split is fixed (seed 0); seeds vary the
model's initialisation, data order and the synthetic subset.

Synthetic pairs come from one bank per generator and sampler setting, generated
once into ``--work/banks`` at the real class shares (chunks, so generation resumes)
and shared by every ratio, seed, model and by ``cls.py``. Each (model, condition,
seed) writes ``--work/runs/.../<model>__<condition>__seed<k>.json`` and is skipped
when present, so ``--profile cpu`` can run in the background across sessions;
``--report-only`` writes the tables from the runs done so far.

    python benchmarks/seg.py --generator checkpoints/pig-busi-128 --profile quick
    nice -n 19 python benchmarks/seg.py --generator checkpoints/pig-busi-128 --profile cpu --work runs/bench_work
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, busi_sets, stu_set, write_results  # noqa: E402
from benchmarks.plots import ratio_curve  # noqa: E402
from integrations.smp_timm import build_segmenter, train_segmenter  # noqa: E402
from integrations.smp_timm.augment import ordinary_augmentation  # noqa: E402
from integrations.smp_timm.segmentation import dice_per_case  # noqa: E402
from synthaug.data.datasets import PairDataset  # noqa: E402
from synthaug.data.mix import PairBank, SyntheticMix  # noqa: E402
from synthaug.paths import data_root  # noqa: E402
from synthaug.pipelines.base import (CARD_NAME, checkpoint_hash, create_generator, read_generator_info,  # noqa: E402
                                     resolve_checkpoint)
from synthaug.sampling import sample_to_folder  # noqa: E402

ALL_CONDITIONS = ("0%", "ordinary", "25%", "50%", "100%", "200%")
SPLIT_SEED = 0  # the benchmark split is fixed; run seeds vary training only
LABEL_ORDER = ("benign", "malignant", None)  # None: a generator that takes no tumour type
ROLES = {"internal": "internal test", "external": "external test", "val": "validation (picks the ratio only)"}


# ============================================================================= task and conditions
@dataclass(frozen=True)
class Task:
    """What differs between the segmentation and the classification benchmark.

    ``metrics`` name the numbers ``evaluate`` returns; the first one picks the
    ratio on validation and is plotted.
    """

    name: str
    title: str
    metrics: tuple[str, ...]
    metric_labels: dict[str, str]
    build: Callable[[str], torch.nn.Module]
    train: Callable
    evaluate: Callable[[torch.nn.Module, PairDataset, bool], dict]
    profiles: dict[str, dict]
    external: bool = False  # also measure on STU (it has masks, no tumour type)
    needs_label: bool = False  # synthetic items must carry the tumour type they were generated for


@dataclass(frozen=True)
class TrainCondition:
    name: str
    ratio: float  # synthetic items per real item
    augment: bool  # ordinary augmentation on the real (and synthetic) items

    @classmethod
    def parse(cls, name: str) -> "TrainCondition":
        """``0%`` (real only, no augmentation), ``ordinary``, or ``N%`` synthetic (with ordinary augmentation)."""
        if name == "ordinary":
            return cls(name, 0.0, True)
        m = re.fullmatch(r"(\d+(?:\.\d+)?)%", name)
        if not m:
            raise SystemExit(f"unknown condition {name!r}: use 0%, ordinary or a synthetic ratio like 25%")
        ratio = float(m.group(1)) / 100
        return cls(name, ratio, ratio > 0)


def segmentation_metrics(model, dataset, bf16: bool) -> dict:
    d = dice_per_case(model, dataset, bf16=bf16)
    return {"dsc": float(d.mean()), "dsc_case_std": float(d.std()), "n": int(d.size)}


SEGMENTATION = Task(
    name="seg",
    title="Lesion segmentation",
    metrics=("dsc",),
    metric_labels={"dsc": "DSC"},
    build=build_segmenter,
    train=train_segmenter,
    evaluate=segmentation_metrics,
    external=True,
    profiles={
        "quick": dict(models=["unet"], conditions=["0%", "50%"], seeds=[0], epochs=1, size=64, cases=24,
                      batch_size=8, lr=1e-3, steps=10, scheduler="dpm++", chunk=8),
        # U-Net first: with model-major order its row of the table is complete first.
        "cpu": dict(models=["unet", "attunet", "resunet", "unetplusplus"], conditions=list(ALL_CONDITIONS),
                    seeds=[0, 1, 2], epochs=None, train_steps=400, size=128, cases=None, batch_size=16, lr=1e-3,
                    steps=None,
                    scheduler=None, chunk=32),
    },
)


# ============================================================================= data
def subset(ds: PairDataset, idx) -> PairDataset:
    return PairDataset([ds.records[i] for i in idx])


def stratified_split(ds: PairDataset, test_fraction: float, seed: int) -> tuple[PairDataset, PairDataset]:
    a, b = train_test_split(np.arange(len(ds)), test_size=test_fraction, stratify=ds.labels, random_state=seed)
    return subset(ds, a), subset(ds, b)


def cap_cases(ds: PairDataset, n: int | None, seed: int = SPLIT_SEED) -> PairDataset:
    """At most ``n`` cases, stratified by tumour type when known (the quick profile's few dozen)."""
    if n is None or n >= len(ds):
        return ds
    labels = ds.labels
    stratify = labels if min(labels) >= 0 else None
    keep, _ = train_test_split(np.arange(len(ds)), train_size=n, stratify=stratify, random_state=seed)
    return subset(ds, sorted(keep))


def benchmark_splits(size: int, cases: int | None, external: bool) -> dict:
    """Train / validation / internal test (/ STU), with the validation part apart from the internal test.

    While the BUSI test images are withheld, ``busi_sets`` already spends its
    validation part on the internal test; a second stratified part of the
    remaining train cases then serves to pick the ratio, so no choice is made
    on the numbers it is reported with.
    """
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


def class_shares(train: PairDataset, conditional: bool) -> dict:
    """Tumour-type shares of the real train part, the shares the synthetic bank is drawn at."""
    if not conditional:
        return {None: 1.0}
    labels = np.array(train.labels)
    return {"benign": float(np.mean(labels == 0)), "malignant": float(np.mean(labels == 1))}


def class_counts(n: int, shares: dict) -> dict:
    """``n`` split by ``shares`` with largest-remainder rounding, so the counts sum to ``n``."""
    raw = {k: n * p for k, p in shares.items()}
    counts = {k: int(np.floor(v)) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


# ============================================================================= generator and bank
def busi_train_ids() -> set[str]:
    """Case ids of the BUSI train split (split.json), the only cases a fair generator may have seen."""
    from synthaug.io.public_sets import busi_case_splits

    return {c for c, s in busi_case_splits(data_root() / "BUSI").items() if s == "train"}


def generator_record(ref: str) -> dict:
    """What the checkpoint says about itself, to put beside the numbers.

    The benchmark is only fair for a generator trained on the BUSI train split
    alone. `synthaug train` records the case ids it trained on in synthaug.json
    (assembled checkpoints keep their parts' shared list), so the claim is
    confirmed when that list is non-empty and inside the train split. Anything
    less is flagged in the report, not refused: the numbers are still
    informative. The model card's "- data:" line is kept for the report.
    """
    cls, path = resolve_checkpoint(ref)
    info = read_generator_info(path)
    card = (path / CARD_NAME).read_text(encoding="utf-8") if (path / CARD_NAME).is_file() else ""
    data_line = next((line[len("- data:"):].strip() for line in card.splitlines() if line.startswith("- data:")), None)
    trained_on = set((info.get("training_data") or {}).get("case_ids") or [])
    train_ids = busi_train_ids()
    return {
        "ref": str(ref), "path": str(path), "generator": info["generator"], "checkpoint_hash": checkpoint_hash(path),
        "conditions": sorted(cls.checkpoint_conditions(path)), "info": info, "card_data": data_line,
        "training_cases": len(trained_on) or None, "busi_train_cases": len(train_ids),
        "busi_train_only": bool(trained_on) and trained_on <= train_ids,
    }


def sampler_setting(record: dict, steps: int | None, scheduler: str | None) -> tuple[int | None, str | None, str]:
    """The (steps, scheduler) a bank is sampled with (the checkpoint's defaults unless given) and the
    bank's folder name, which changes with any of them, so banks never mix settings."""
    steps = steps or record["info"].get("default_steps")
    scheduler = scheduler or record["info"].get("default_scheduler")
    key = f"{record['generator']}-{record['checkpoint_hash']}-{scheduler or 'default'}-{steps or 'default'}"
    return steps, scheduler, key


def chunk_seed(label: str | None, k: int) -> int:
    """Base seed of chunk ``k`` of one class; ``pair_seeds`` keeps pairs of distinct bases apart."""
    return 100_000 * LABEL_ORDER.index(label) + k


@dataclass
class Bank:
    """Entries of a generated bank by tumour type (None: unlabelled), plus how it was made."""

    key: str
    entries: dict
    seconds_generating: float = 0.0
    record: dict = field(default_factory=dict)


def ensure_bank(record: dict, work: Path, need: dict, steps, scheduler, chunk: int, batch_size: int,
                generate: bool = True) -> Bank:
    """Generate whatever chunks of the bank are missing, then return ``need[label]`` entries per class
    (with ``generate=False``, only what is already there: for a report while a run goes on).

    A chunk is ``chunk`` pairs of one class in its own folder, renamed into
    place only when ``sample_to_folder`` has finished it, so a killed run
    leaves no half chunk behind and the next one resumes at the first
    missing chunk. Chunk k of a class always holds the same seeds, so a
    larger need later only adds chunks.
    """
    steps, scheduler, key = sampler_setting(record, steps, scheduler)
    root = work / "banks" / key
    gen, seconds, entries = None, 0.0, {}
    for label, n in need.items():
        folder = root / (label or "unlabelled")
        chunks = []
        for k in range(-(-n // chunk)):
            done = folder / f"chunk{chunk:03d}_{k:04d}"
            if not (done / "pairs.json").is_file():
                if not generate:
                    break
                if gen is None:
                    kwargs = {k_: v for k_, v in {"steps": steps, "scheduler": scheduler}.items() if v is not None}
                    gen = create_generator(record["path"], **kwargs)
                partial = done.with_name(done.name + ".partial")
                shutil.rmtree(partial, ignore_errors=True)
                t0 = time.time()
                sample_to_folder(gen, chunk, partial, seed=chunk_seed(label, k), tumour_type=label or "mixed",
                                 batch_size=batch_size)
                seconds += time.time() - t0
                partial.rename(done)
            chunks.append(done)
        entries[label] = [e for c in chunks for e in PairBank.open(c).entries][:n]
    if seconds:
        print(f"bank {key}: generated in {seconds:.0f} s", flush=True)
    return Bank(key, entries, seconds, {"folder": str(root), "steps": steps, "scheduler": scheduler,
                                        "pairs": {k or "unlabelled": len(v) for k, v in entries.items()}})


def bank_need(n_real: int, conditions: list[TrainCondition], shares: dict) -> dict:
    """Pairs per class the largest ratio takes (smaller ratios use a subset of the same bank)."""
    need = {label: 0 for label in shares}
    for c in conditions:
        for label, n in class_counts(round(c.ratio * n_real), shares).items():
            need[label] = max(need[label], n)
    return need


def bank_subset(bank: Bank, n: int, shares: dict, seed: int) -> PairBank:
    """``n`` bank pairs at the real class shares, the first ones of a per-seed shuffle of each class.

    A fixed subset of the ratio's size (not the whole bank cycled through)
    keeps "25%" meaning 25% distinct synthetic cases, as the BUS paper's
    pre-generated sets did; taking prefixes nests the ratios within a seed.
    """
    picked = []
    for label, k in class_counts(n, shares).items():
        pool = bank.entries[label]
        order = np.random.default_rng([seed, LABEL_ORDER.index(label)]).permutation(len(pool))
        picked += [pool[i] for i in order[:k]]
    return PairBank(picked, bank.record.get("folder"))


# ============================================================================= runs
def training_set(cond: TrainCondition, train: PairDataset, bank: Bank | None, shares: dict, seed: int):
    """The real train part as the condition wants it; synthetic items share its augmentation."""
    real = PairDataset(train.records, transform=ordinary_augmentation() if cond.augment else None)
    if cond.ratio == 0:
        return real
    source = bank_subset(bank, round(cond.ratio * len(real)), shares, seed)
    return SyntheticMix(real, source, ratio=cond.ratio, seed=seed)


def run_one(task: Task, model_name: str, cond: TrainCondition, seed: int, data: dict, bank, shares, s: dict) -> dict:
    """Train one model from scratch under one condition and seed; measure it on every evaluation set."""
    t0 = time.time()
    torch.manual_seed(seed)  # the model's initialisation
    model = task.build(model_name)
    train = training_set(cond, data["train"], bank, shares, seed)
    epochs = epochs_for(s, len(train))
    task.train(model, train, epochs=epochs, batch_size=s["batch_size"], lr=s["lr"], seed=seed, bf16=s["bf16"])
    t_train = time.time() - t0
    metrics = {split: task.evaluate(model, ds, s["bf16"]) for split, ds in data.items() if split != "train"}
    return {"task": task.name, "model": model_name, "condition": cond.name, "ratio": cond.ratio,
            "ordinary_augmentation": cond.augment, "seed": seed, "n_real": len(data["train"]),
            "n_synthetic": len(train) - len(data["train"]), "epochs": epochs, "bank": bank.key if cond.ratio else None,
            "settings": s, "metrics": metrics, "train_seconds": t_train, "seconds": time.time() - t0}


def epochs_for(s: dict, n_items: int) -> int:
    """The profile's epochs, or as many as make about ``train_steps`` optimiser steps on ``n_items``.

    A step budget gives every condition the same compute, so a synthetic ratio is
    compared with real data alone at equal cost rather than with 3x more steps.
    """
    if not s.get("train_steps"):
        return s["epochs"]
    batches = max(1, n_items // s["batch_size"])  # the loader drops the last partial batch
    return max(1, round(s["train_steps"] / batches))


def settings_key(s: dict) -> str:
    return hashlib.sha1(json.dumps(s, sort_keys=True).encode()).hexdigest()[:8]


def run_path(work: Path, task: Task, profile: str, s: dict, bank_key: str | None, model: str, cond: TrainCondition,
             seed: int) -> Path:
    """Runs without synthetic data do not depend on the generator, so they live under ``real/`` and
    are shared by every generator benchmarked with the same settings."""
    folder = work / "runs" / f"{task.name}-{profile}-{settings_key(s)}" / (bank_key if cond.ratio else "real")
    return folder / f"{model}__{cond.name.replace('%', 'pct')}__seed{seed}.json"


def write_json_atomic(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def run_matrix(task: Task, plan: dict, data: dict, bank: Bank | None, shares: dict, work: Path, profile: str,
               report_only: bool) -> list[dict]:
    """Every (model, seed, condition) in model-major order; done runs are read back, not redone."""
    runs, s = [], plan["settings"]
    jobs = [(m, seed, c) for m in plan["models"] for seed in plan["seeds"] for c in plan["conditions"]]
    for i, (model, seed, cond) in enumerate(jobs, 1):
        path = run_path(work, task, profile, s, bank.key if bank else None, model, cond, seed)
        if path.is_file():
            runs.append(json.loads(path.read_text(encoding="utf-8")))
            continue
        if report_only:
            continue
        print(f"[{i}/{len(jobs)}] {task.name} {model} {cond.name} seed {seed}", flush=True)
        run = run_one(task, model, cond, seed, data, bank, shares, s)
        write_json_atomic(path, run)
        scores = {split: round(m[task.metrics[0]], 4) for split, m in run["metrics"].items()}
        print(f"  {run['seconds']:.0f} s  {task.metrics[0]} {scores}", flush=True)
        runs.append(run)
    return runs


# ============================================================================= summary and report
def mean_std(values: list[float]) -> dict:
    """Mean and sample std over seeds (0 for one seed)."""
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n_seeds": int(v.size)}


def summarise(task: Task, runs: list[dict], models: list[str], conditions: list[TrainCondition]) -> dict:
    """Mean ± std over seeds per (model, condition, split, metric) and the condition validation picks."""
    cells = {}
    for m in models:
        for c in conditions:
            done = [r for r in runs if r["model"] == m and r["condition"] == c.name]
            if done:
                cells.setdefault(m, {})[c.name] = {
                    split: {k: mean_std([r["metrics"][split][k] for r in done]) for k in task.metrics}
                    for split in done[0]["metrics"]}
                cells[m][c.name]["time"] = {"minutes": mean_std([r["seconds"] / 60 for r in done])}
    return {"cells": cells, "selection": {m: select_on_validation(task, cells.get(m, {}), conditions) for m in models}}


def select_on_validation(task: Task, row: dict, conditions: list[TrainCondition]) -> dict:
    """The condition, and the synthetic ratio, a user would pick by mean validation score."""

    def best(names):
        names = [n for n in names if n in row]
        return max(names, key=lambda n: row[n]["val"][task.metrics[0]]["mean"]) if names else None

    return {"any": best([c.name for c in conditions]), "synthetic": best([c.name for c in conditions if c.ratio > 0])}


def fmt(cell: dict | None, digits: int = 3) -> str:
    """``mean ± std``; the mean alone for one seed; "–" for a cell whose runs are not done."""
    if not cell:
        return "–"
    mean = f"{cell['mean']:.{digits}f}"
    return f"{mean} ± {cell['std']:.{digits}f}" if cell["n_seeds"] > 1 else mean


def budget(s: dict) -> str:
    if s.get("train_steps"):
        return f"about {s['train_steps']} optimiser steps per run whatever the condition (epochs scaled to the data)"
    return f"{s['epochs']} epochs per run (more data, more steps)"


def markdown(task: Task, plan: dict, summary: dict, meta: dict) -> str:
    """Tables like the BUS paper's Table 5 (rows models, columns conditions), one per evaluation set,
    then the validation picks with their test numbers, timings and the caveats."""
    names, conds, cells = meta["split_names"], [c.name for c in plan["conditions"]], summary["cells"]
    splits = [s for s in ROLES if s in names]
    tests = [s for s in splits if s != "val"]
    lines = [f"# {task.title}: synthetic ratio benchmark ({meta['profile']} profile)", ""]
    for split in splits:
        for k in task.metrics:
            lines += [f"**{task.metric_labels[k]}, {ROLES[split]}**: {names[split]}; mean ± std over seeds", "",
                      "| model | " + " | ".join(conds) + " |", "|---" * (len(conds) + 1) + "|"]
            lines += [f"| {m} | " + " | ".join(fmt(cells.get(m, {}).get(c, {}).get(split, {}).get(k)) for c in conds)
                      + " |" for m in plan["models"]]
            lines.append("")
    key = task.metrics[0]
    lines += [f"**Picked on validation** (highest mean validation {task.metric_labels[key]}), with its test scores", "",
              "| model | pick (any condition) | " + " | ".join(ROLES[s] for s in tests)
              + " | pick (synthetic ratios only) | " + " | ".join(ROLES[s] for s in tests) + " |",
              "|---" * (3 + 2 * len(tests)) + "|"]
    for m in plan["models"]:
        row, cols = cells.get(m, {}), []
        for pick in summary["selection"][m].values():
            cols.append(pick or "–")
            cols += [fmt(row.get(pick, {}).get(s, {}).get(key)) for s in tests]
        lines.append(f"| {m} | " + " | ".join(cols) + " |")
    lines += ["", "**Minutes per run** (train + evaluation), mean ± std over seeds", "",
              "| model | " + " | ".join(conds) + " |", "|---" * (len(conds) + 1) + "|"]
    lines += [f"| {m} | " + " | ".join(fmt(cells.get(m, {}).get(c, {}).get("time", {}).get("minutes"), 1)
                                       for c in conds) + " |" for m in plan["models"]]
    lines += ["", *notes(task, plan, meta)]
    return "\n".join(lines)


def notes(task: Task, plan: dict, meta: dict) -> list[str]:
    s, gen, names = plan["settings"], meta.get("generator"), meta["split_names"]
    out = [
        "- Conditions: `0%` real only without augmentation; `ordinary` real with ordinary augmentation; "
        "`N%` real + round(N% x real) synthetic pairs, **with ordinary augmentation too (as in the BUS paper)**, "
        "the synthetic pairs augmented like the real ones.",
        f"- Train: {meta['n_train']} real BUSI train cases; validation ({meta['n_val']}): {names['val']}; "
        f"internal test ({meta['n_internal']}): {names['internal']}"
        + (f"; external: {names['external']} ({meta['n_external']})" if "external" in names else "") + ".",
        f"- {budget(s)}, {s['size']} px, batch {s['batch_size']}, lr {s['lr']}, bf16 {s['bf16']}; "
        f"seeds {plan['seeds']} (initialisation, order, synthetic subset); split fixed (seed {SPLIT_SEED}).",
        f"- Runs done: {meta['runs_done']} of {meta['runs_planned']}; time per run {meta['seconds_per_run']}; "
        f"training time of the runs shown {meta['run_seconds_total'] / 60:.1f} min; this invocation "
        f"{meta['wall_seconds'] / 60:.1f} min (bank generation {meta['bank_seconds'] / 60:.1f} min).",
    ]
    return out + (generator_notes(gen, meta["bank"], names) if gen else [])


def generator_notes(gen: dict, bank: dict | None, names: dict) -> list[str]:
    """Which generator and bank, what it was trained on, and what that means for the internal test."""
    out = [f"- Generator `{gen['ref']}` ({gen['generator']}, checkpoint {gen['checkpoint_hash']}, "
           f"conditions {gen['conditions'] or 'none'})."]
    if bank:
        out.append(f"- Bank: {bank['pairs']} pairs sampled with {bank['scheduler']} x {bank['steps']} steps "
                   "at the real class shares; each ratio and seed uses a fixed subset of it.")
    out.append(f"- Training data per its model card: {gen['card_data'] or 'not stated (no model card)'}."
               + (f" Its synthaug.json lists {gen['training_cases']} training case ids, all in the BUSI train split."
                  if gen["busi_train_only"] else " **Not confirmed to be the BUSI train split only.**"))
    if names.get("test_withheld"):
        seen = ("This one was trained on all of them, so it has seen the internal-test cases"
                if gen["training_cases"] == gen["busi_train_cases"] else "A generator trained on all of them has "
                "seen the internal-test cases")
        clean = " The external test is free of that." if "external" in names else ""
        out.append(f"- The BUSI test images are withheld, so the internal test is carved from the "
                   f"{gen['busi_train_cases']} train-split cases. {seen}, which can flatter the synthetic "
                   f"conditions there.{clean}")
    return out


# ============================================================================= command line
def parse_args(task: Task, argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=getattr(sys.modules.get("__main__"), "__doc__", None),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generator", help="registered name or checkpoint folder (trained on the BUSI train split only)")
    ap.add_argument("--profile", choices=sorted(task.profiles), default="quick")
    ap.add_argument("--models", help="comma-separated, overrides the profile")
    choices = ", ".join(ALL_CONDITIONS).replace("%", "%%")  # argparse %-formats help texts
    ap.add_argument("--conditions", help=f"comma-separated from {choices} (or any N%%)")
    ap.add_argument("--seeds", help="comma-separated integers")
    ap.add_argument("--epochs", type=int, help="epochs per run (drops the profile's step budget)")
    ap.add_argument("--train-steps", type=int, help="optimiser steps per run, the same for every condition")
    ap.add_argument("--size", type=int, help="image side in pixels")
    ap.add_argument("--cases", type=int, help="cap every split at this many cases")
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--no-bf16", action="store_true", help="train and predict in float32")
    ap.add_argument("--steps", type=int, help="sampler steps for the bank (default: the checkpoint's)")
    ap.add_argument("--scheduler", help="ddim, dpm++ or unipc (default: the checkpoint's)")
    ap.add_argument("--bank-batch-size", type=int, default=16)
    ap.add_argument("--work", type=Path, default=Path("runs/bench_work"), help="bank and per-run JSON cache")
    ap.add_argument("--results-dir", type=Path, default=RESULTS)
    ap.add_argument("--name", help="results file stem (default <task>_<generator>_<profile>)")
    ap.add_argument("--report-only", action="store_true", help="write the report from the runs done, train nothing")
    return ap.parse_args(argv)


def make_plan(task: Task, args) -> dict:
    """Profile defaults, overridden by whatever was given on the command line."""
    p = dict(task.profiles[args.profile])
    split = lambda text, cast=str: [cast(x) for x in text.split(",") if x.strip()]  # noqa: E731
    for key, cast in (("models", str), ("conditions", str), ("seeds", int)):
        if getattr(args, key):
            p[key] = split(getattr(args, key), cast)
    if args.epochs is not None:
        p["train_steps"] = None
    for key in ("epochs", "train_steps", "size", "cases", "batch_size", "lr", "steps", "scheduler"):
        if getattr(args, key) is not None:
            p[key] = getattr(args, key)
    settings = {k: p[k] for k in ("epochs", "size", "cases", "batch_size", "lr")}
    if p.get("train_steps"):
        settings["train_steps"] = p["train_steps"]
    settings["bf16"] = not args.no_bf16
    return {"models": p["models"], "conditions": [TrainCondition.parse(c) for c in p["conditions"]],
            "seeds": p["seeds"], "settings": settings, "steps": p["steps"], "scheduler": p["scheduler"],
            "chunk": p["chunk"]}


def check_generator(task: Task, plan: dict, ref: str | None) -> dict | None:
    """The generator's record, or a clear refusal when the requested conditions cannot use it."""
    if not any(c.ratio > 0 for c in plan["conditions"]):
        return generator_record(ref) if ref else None
    if not ref:
        raise SystemExit("--generator is required for synthetic conditions")
    record = generator_record(ref)
    if task.needs_label and "label" not in record["conditions"]:
        raise SystemExit(f"{ref} is not class-conditional (its conditions: {record['conditions'] or 'none'}): the "
                         f"{task.name} benchmark needs every synthetic image generated for a tumour type, and never "
                         "uses pseudo-labels. Use a generator trained with class_conditional: true.")
    if not record["busi_train_only"]:
        print(f"WARNING: {record['path']} does not record training on the BUSI train split only "
              f"(synthaug.json training case ids; model card data: {record['card_data']}); the report flags it.",
              file=sys.stderr, flush=True)
    return record


def main(task: Task = SEGMENTATION, argv=None) -> Path:
    """Plan, data, bank, runs (skipping those done), then the report; returns the results JSON path."""
    t0 = time.time()
    args = parse_args(task, argv)
    plan = make_plan(task, args)
    record = check_generator(task, plan, args.generator)
    split = benchmark_splits(plan["settings"]["size"], plan["settings"]["cases"], task.external)
    shares = class_shares(split["sets"]["train"], bool(record) and "label" in record["conditions"])
    bank = None
    if any(c.ratio > 0 for c in plan["conditions"]):
        need = bank_need(len(split["sets"]["train"]), plan["conditions"], shares)
        bank = ensure_bank(record, args.work, need, plan["steps"], plan["scheduler"], plan["chunk"],
                           args.bank_batch_size, generate=not args.report_only)
    runs = run_matrix(task, plan, split["sets"], bank, shares, args.work, args.profile, args.report_only)
    return write_report(task, args, plan, split, record, bank, shares, runs, t0)


def write_report(task: Task, args, plan: dict, split: dict, record, bank, shares: dict, runs: list[dict],
                 t0: float) -> Path:
    """results/<name>.json (every run, the summary, provenance), .md (the tables) and .png (the ratio curve)."""
    summary = summarise(task, runs, plan["models"], plan["conditions"])
    name = args.name or f"{task.name}_{Path(record['ref']).name if record else 'real'}_{args.profile}"
    figure = args.results_dir / f"{name}.png"
    panels = {s: f"{ROLES[s]}: {split['names'][s]}" for s in ("internal", "external") if s in split["sets"]}
    ratio_curve(summary["cells"], plan["models"], [(c.name, c.ratio, c.augment) for c in plan["conditions"]],
                task.metrics[0], task.metric_labels[task.metrics[0]], panels, figure, title=task.title)
    per_run = [r["seconds"] for r in runs]
    meta = {"profile": args.profile, "generator": record, "bank": bank.record if bank else None,
            "split_names": split["names"], **{f"n_{k}": len(v) for k, v in split["sets"].items()},
            "runs_done": len(runs), "runs_planned": len(plan["models"]) * len(plan["seeds"]) * len(plan["conditions"]),
            "seconds_per_run": f"{np.mean(per_run):.0f} ± {np.std(per_run):.0f} s" if runs else "–",
            "run_seconds_total": float(np.sum(per_run)), "bank_seconds": bank.seconds_generating if bank else 0.0,
            "wall_seconds": time.time() - t0}
    payload = {"task": task.name, **meta, "class_shares": {str(k): v for k, v in shares.items()},
               "models": plan["models"], "conditions": [c.__dict__ for c in plan["conditions"]], "seeds": plan["seeds"],
               "settings": plan["settings"], "summary": summary, "figure": figure.name, "runs": runs}
    out = write_results(name, payload, markdown(task, plan, summary, meta), out_dir=args.results_dir)
    print(f"wrote {out} and {figure} in {meta['wall_seconds']:.0f} s", flush=True)
    return out


if __name__ == "__main__":
    main(SEGMENTATION)
