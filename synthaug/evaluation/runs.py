"""One training run, and the resumable matrix of runs.

A run trains one model from scratch under one condition and seed. With the
``converged`` protocol (settings ``select: best-val``) it measures the
validation part after every epoch, keeps the weights of the best validation
score (the first epoch reaching it) and reports every evaluation set with
those weights: model selection never looks at a test set. The validation curve
and the per-case test scores go into the run's JSON.

Each (model, condition, seed) writes
``--work/runs/<task>-<profile>-<settings hash>/<bank key or real>/<model>__<condition>__seed<k>.json``
and is skipped when present, so a killed matrix resumes where it stopped. A run in progress also
keeps ``<same name>.state.pt`` (training state, best checkpoint, curve, seconds so far; rewritten
after every epoch, deleted once the JSON is written), so a killed run resumes from its last
finished epoch with the JSON it would have had uninterrupted (only the timings differ).
A run holds ``<same name>.lock`` (filelock) while it trains: a second process started on the same
matrix skips the runs another one holds and takes the next free one, so two cores (or GPUs) can
work through one matrix without training a run twice or writing one file from two processes.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from filelock import FileLock, Timeout

from integrations.smp_timm.augment import ordinary_augmentation

from ..data.datasets import PairDataset
from ..errors import SynthaugError
from ..mix import SyntheticMix
from ..precision import machine
from .banks import Bank, bank_subset
from .conditions import COPY_PASTE, TrainCondition
from .copypaste import copy_paste_records
from .splits import class_counts, real_fraction_subset


def say(line: str) -> None:
    """The default log of a run: a line on stdout, flushed (runs last hours; their logs are watched)."""
    print(line, flush=True)


@dataclass(frozen=True)
class Task:
    """What differs between the segmentation and the classification benchmark.

    ``metrics`` name the numbers ``evaluate`` returns; the first one selects
    (the checkpoint, the ratio) on validation and is plotted. ``evaluate``
    also returns ``"cases"``: per-case values for the paired bootstrap
    (``paired_metric`` says how they make the metric: ``mean`` of per-case
    DSC, or ``auc`` of per-case scores against their labels).
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
    needs_label: bool = False  # every training item must carry its tumour type
    paired_metric: str = "mean"
    describe_model: Callable[[str], dict] | None = None  # e.g. the encoder and where its weights came from


class BestCheckpoint:
    """The weights of the best validation score so far (ties keep the earlier epoch)."""

    def __init__(self):
        self.score, self.epoch, self.state = -math.inf, None, None

    def update(self, epoch: int, score: float, model: torch.nn.Module) -> bool:
        if not (math.isfinite(score) and score > self.score):
            return False
        self.score, self.epoch = float(score), int(epoch)
        self.state = copy.deepcopy({k: v.detach().clone() for k, v in model.state_dict().items()})
        return True

    def restore(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.state is not None:
            model.load_state_dict(self.state)
        return model


class RunProgress:
    """What a run accumulates over its epochs: the best checkpoint, the validation curve and the
    seconds spent. ``fit`` saves it with the training state after every epoch (``state_dict`` /
    ``load_state_dict``), so a resumed run reports the same best epoch and curve as an uninterrupted
    one and its seconds sum every session's part."""

    def __init__(self):
        self.best, self.curve, self.before, self.t0 = BestCheckpoint(), [], 0.0, time.time()

    def seconds(self) -> float:
        """Seconds of the earlier sessions of this run plus this session's so far."""
        return self.before + time.time() - self.t0

    def state_dict(self) -> dict:
        b = self.best
        return {"best": {"score": b.score, "epoch": b.epoch, "state": b.state}, "curve": self.curve,
                "seconds": self.seconds()}

    def load_state_dict(self, d: dict) -> None:
        self.best.score, self.best.epoch, self.best.state = d["best"]["score"], d["best"]["epoch"], d["best"]["state"]
        self.curve, self.before = list(d["curve"]), float(d["seconds"])


def training_set(cond: TrainCondition, train: PairDataset, bank: Bank | None, shares: dict, seed: int,
                 epochs: int | None = None):
    """The real train part plus whatever the condition adds, all with the condition's augmentation
    (``epochs``: the run's, for a schedule)."""
    transform = ordinary_augmentation() if cond.augment else None
    real = PairDataset(train.records, transform=transform)
    if cond.ratio == 0:
        return real
    n = round(cond.ratio * len(real))
    if cond.source == COPY_PASTE:
        return PairDataset(list(train.records) + copy_paste_records(list(train.records), n, seed), transform=transform)
    n_pool = round(cond.pool_ratio * len(real))
    pool = bank_subset(bank, n_pool, shares, seed, class_counts(round(cond.pool_ratio * bank.n_real), shares)
                       if cond.bank is not None and bank.n_real else None)
    return SyntheticMix(real, pool, ratio=cond.ratio, seed=seed, schedule=cond.schedule,
                        epochs=epochs if cond.schedule != "constant" else None)


def epochs_for(s: dict, n_items: int) -> int:
    """The profile's epochs, or as many as make about ``train_steps`` optimiser steps on ``n_items``
    (the earlier protocol: every condition the same compute)."""
    if not s.get("train_steps"):
        return s["epochs"]
    batches = max(1, n_items // s["batch_size"])  # the loader drops the last partial batch
    return max(1, round(s["train_steps"] / batches))


def run_one(task: Task, model_name: str, cond: TrainCondition, seed: int, data: dict, bank, shares, s: dict,
            state_path: Path | None = None, log: Callable[[str], None] = None,
            on_epoch: Callable[[], None] | None = None) -> dict:
    """Train one model from scratch under one condition and seed; measure it on every evaluation set
    (``bank``: the bank of the condition's background). With ``state_path`` the run saves its state
    there after every epoch and resumes from it when present (the caller deletes it when done).
    ``log`` takes the per-epoch lines; ``on_epoch`` (e.g. a progress bar of a whole matrix) is called
    after every epoch instead of the training loop's own bar."""
    log = log or say
    progress = RunProgress()
    fraction = s.get("real_fraction", 1.0)
    subset_seed = s.get("subset_seed", seed)  # fixed across seeds when a generator was fit on one subset
    data = {**data, "train": real_fraction_subset(data["train"], fraction, subset_seed)}  # nested per seed
    torch.manual_seed(seed)  # the model's initialisation
    model = task.build(model_name)
    n_real = len(data["train"])
    epochs = epochs_for(s, n_real + round(cond.ratio * n_real))  # real items plus the added ones, any schedule
    train = training_set(cond, data["train"], bank, shares, seed, epochs)
    best, key = progress.best, task.metrics[0]

    def validate(epoch: int, loss: float) -> bool:
        m = task.evaluate(model, data["val"], s["bf16"])
        improved = best.update(epoch + 1, m[key], model)
        progress.curve.append({"epoch": epoch + 1, "train_loss": loss, "val": {k: m[k] for k in task.metrics},
                               "seconds": progress.seconds()})
        log(f"    epoch {epoch + 1:3d}/{epochs}  loss {loss:.4f}  val {key} {m[key]:.4f}{'  *' if improved else ''}"
            f"  {progress.seconds():6.0f} s")
        if on_epoch:
            on_epoch()
        patience = s.get("patience")
        return bool(patience) and epoch + 1 - best.epoch >= patience

    selecting = s.get("select") == "best-val"
    resume = {"state_path": state_path, "extra_state": progress} if state_path else {}  # fit's arguments
    if s.get("min_batches"):
        resume["min_batches"] = s["min_batches"]
    if on_epoch:
        resume["progress"] = False
    task.train(model, train, epochs=epochs, batch_size=s["batch_size"], lr=s["lr"], seed=seed, bf16=s["bf16"],
               on_epoch_end=validate if selecting else None, **resume)
    t_train = progress.seconds()
    if selecting:
        best.restore(model).eval()
    metrics = {split: task.evaluate(model, ds, s["bf16"]) for split, ds in data.items() if split != "train"}
    out = {"task": task.name, "model": model_name, **(task.describe_model(model_name) if task.describe_model else {}),
           "real_fraction": fraction, "condition": cond.name, "ratio": cond.ratio,
           "ordinary_augmentation": cond.augment, "source": cond.source, "seed": seed, "n_real": len(data["train"]),
           "n_synthetic": len(train) - len(data["train"]) if cond.synthetic else 0,
           "n_added": len(train) - len(data["train"]), "epochs": epochs, "bank": bank.key if cond.synthetic else None,
           "settings": s, "metrics": metrics, "train_seconds": t_train, "seconds": progress.seconds(),
           "machine": machine()}  # beside the settings, not in them: a run resumes on any machine
    if selecting:
        out.update(curve=progress.curve, best_epoch=best.epoch, epochs_run=len(progress.curve))
    return out


def settings_key(s: dict) -> str:
    return hashlib.sha1(json.dumps(s, sort_keys=True).encode()).hexdigest()[:8]


def run_path(work: Path, task: Task, profile: str, s: dict, bank_key: str | None, model: str, cond: TrainCondition,
             seed: int) -> Path:
    """Runs without synthetic data do not depend on the generator, so they live under ``real/`` and
    are shared by every generator benchmarked with the same settings."""
    folder = work / "runs" / f"{task.name}-{profile}-{settings_key(s)}" / (bank_key if cond.synthetic else "real")
    return folder / f"{model}__{cond.file_stem()}__seed{seed}.json"


def write_json_atomic(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def _train_locked(task, model, cond, seed, data, bank, shares, s, path: Path, tag: str, log=None,
                  on_epoch=None) -> dict:
    """Train (or resume) one run whose lock the caller holds; write its JSON, then drop its state."""
    log = log or say
    log(f"{tag} {time.strftime('%H:%M:%S')} {task.name} {model} {cond.name} seed {seed}")
    state = path.with_suffix(".state.pt")  # the run's training state while it is in progress
    if state.is_file():
        log("  resuming from its saved training state")
    run = run_one(task, model, cond, seed, data, bank, shares, s, state_path=state, log=log, on_epoch=on_epoch)
    write_json_atomic(path, run)
    state.unlink(missing_ok=True)
    return run


def differing_settings(recorded: dict, planned: dict) -> list[str]:
    """The settings keys on which a recorded run and a plan differ (a run is the plan's only when none do)."""
    return sorted(k for k in set(recorded) | set(planned) if recorded.get(k) != planned.get(k))


def import_runs(report: Path, task: Task, plan: dict, banks: dict[str, Bank], work: Path, profile: str,
                log: Callable[[str], None] | None = None) -> int:
    """Seed ``work`` with the finished runs a results JSON records, so a matrix continues on a machine
    that lost its work folder instead of training them again. A run is taken only when its task,
    settings and bank key are exactly this plan's (a changed setting or generator trains anew);
    runs already in ``work`` are never overwritten. Returns how many runs were written; ``log`` is told
    which settings kept runs out (e.g. ``bf16``: a machine without native bf16 trains in float32, so the
    recorded runs are not this plan's and the matrix would start again)."""
    recorded = json.loads(Path(report).read_text(encoding="utf-8"))
    if recorded.get("task") != task.name or recorded.get("profile") != profile:
        raise SynthaugError(f"{report}: a {recorded.get('task')} / {recorded.get('profile')} report, not "
                         f"{task.name} / {profile}")
    conds = {c.name: c for c in plan["conditions"]}
    written, differ = 0, {}
    for run in recorded.get("runs", []):
        cond = conds.get(run["condition"])
        if cond is None:
            continue
        if run["settings"] != plan["settings"]:
            for key in differing_settings(run["settings"], plan["settings"]):
                differ.setdefault(key, [run["settings"].get(key), plan["settings"].get(key), 0])[2] += 1
            continue
        bank = banks.get(cond.background) if cond.synthetic else None
        if cond.synthetic and (bank is None or run["bank"] != bank.key):
            continue
        path = run_path(work, task, profile, plan["settings"], bank.key if bank else None, run["model"], cond,
                        run["seed"])
        if not path.is_file():
            write_json_atomic(path, run)
            written += 1
    if differ and log:
        log(f"{report}: runs with other settings not imported: " + "; ".join(
            f"{key} recorded {old!r}, here {new!r} ({n} runs)" for key, (old, new, n) in differ.items()))
    return written


def run_job(task: Task, job: tuple, plan: dict, data: dict, banks: dict[str, Bank], shares: dict, work: Path,
            profile: str, report_only: bool = False, tag: str = "", log: Callable[[str], None] = None,
            on_epoch: Callable[[], None] | None = None) -> dict | None:
    """One (model, seed, condition) of a matrix: its JSON when done, else trained (or resumed) under its lock;
    None when another process holds the lock (or ``report_only`` and not done)."""
    log = log or say
    (model, seed, cond), s = job, plan["settings"]
    bank = banks.get(cond.background)
    path = run_path(work, task, profile, s, bank.key if bank else None, model, cond, seed)
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    if report_only:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path.with_suffix(".lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log(f"{tag} {task.name} {model} {cond.name} seed {seed}: another process is training it, skipped")
        return None
    try:
        if path.is_file():  # finished by another process between the check above and the lock
            return json.loads(path.read_text(encoding="utf-8"))
        run = _train_locked(task, model, cond, seed, data, bank, shares, s, path, tag, log, on_epoch)
    finally:
        lock.release()
        if path.is_file():  # safe to drop: whoever locks a stale lock file next finds the JSON and skips
            Path(lock.lock_file).unlink(missing_ok=True)
    scores = {split: round(m[task.metrics[0]], 4) for split, m in run["metrics"].items()}
    best = f" best epoch {run['best_epoch']}/{run['epochs_run']}" if "best_epoch" in run else ""
    log(f"  {run['seconds']:.0f} s{best}  {task.metrics[0]} {scores}  -> {path}")
    return run


def matrix_jobs(plan: dict) -> list[tuple]:
    """(model, seed, condition) in run order: models outermost, then seeds, then conditions in the order given
    (so seed 0 of every condition is done before seed 1)."""
    return [(m, seed, c) for m in plan["models"] for seed in plan["seeds"] for c in plan["conditions"]]


def run_matrix(task: Task, plan: dict, data: dict, banks: dict[str, Bank], shares: dict, work: Path, profile: str,
               report_only: bool) -> list[dict]:
    """Every job of ``matrix_jobs``; done runs are read back, not redone. ``banks`` holds the synthetic bank
    of each background ("synthetic", "real") the conditions use."""
    jobs = matrix_jobs(plan)
    runs = [run_job(task, job, plan, data, banks, shares, work, profile, report_only, f"[{i}/{len(jobs)}]",
                    log=say) for i, job in enumerate(jobs, 1)]
    return [r for r in runs if r is not None]
