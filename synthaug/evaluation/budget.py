"""Fitting a trial into ``--minutes``: measure what a step costs here, then size epochs and seeds.

The cost of a step depends on the machine, its load and the model, so it is
measured, not assumed: a few optimiser steps on the real train part (the
first one, which warms up the kernels, is not counted) and one validation
pass. A run of a condition then costs about ``epochs x (batches x step +
validation)`` plus a final evaluation of every part. Epochs come first: a
model stopped long before it converges answers the wrong question, so seeds
are dropped (down to one) before epochs fall below ``MIN_EPOCHS``.
"""
from __future__ import annotations

import math
import time

import torch

from ..data.datasets import PairDataset
from .splits import subset

MIN_EPOCHS = 15  # below this, fewer seeds: an unconverged model's verdict says little
SAFETY = 1.25  # augmentation, the load of other jobs and evaluation overheads the measurement misses


def batches_per_epoch(n_items: int, batch_size: int, min_batches: int | None) -> int:
    """Optimiser steps of one epoch (the loader drops a last partial batch; ``min_batches`` is a floor)."""
    return max(min_batches or 0, max(1, n_items // batch_size) if n_items > batch_size else 1)


def measure(task, model_name: str, train: PairDataset, val: PairDataset, batch_size: int, bf16: bool,
            steps: int = 3) -> dict:
    """Seconds per optimiser step and per validation pass of ``model_name`` here and now."""
    torch.manual_seed(0)
    model = task.build(model_name)
    n = min(len(train), batch_size * (steps + 1))
    part = subset(train, range(n))
    t0 = time.time()
    task.train(model, subset(train, range(min(n, batch_size))), epochs=1, batch_size=batch_size, bf16=bf16,
               progress=False)  # warm-up: allocations and kernel choice
    t1 = time.time()
    task.train(model, part, epochs=1, batch_size=batch_size, bf16=bf16, progress=False)
    t2 = time.time()
    task.evaluate(model, val, bf16)
    t3 = time.time()
    n_steps = batches_per_epoch(n, batch_size, None)
    return {"step": (t2 - t1) / n_steps, "val": t3 - t2, "warmup": t1 - t0, "n_val": len(val)}


def run_seconds(cost: dict, epochs: int, batches: int, n_eval: int) -> float:
    """Estimated seconds of one run: its epochs (steps and a validation pass each) and the final evaluation."""
    per_val_case = cost["val"] / max(1, cost["n_val"])
    return SAFETY * (epochs * (batches * cost["step"] + cost["val"]) + n_eval * per_val_case)


def fit_budget(seconds: float | None, cost: dict, batches: list[int], seeds: list[int], max_epochs: int,
               n_eval: int) -> dict:
    """The epochs and seeds that fit ``seconds`` (None: no budget) for conditions of ``batches`` steps an epoch.

    Returns {"epochs", "seeds", "estimate" (seconds), "cut": what was reduced and why}.
    """
    per_epoch = SAFETY * sum(b * cost["step"] + cost["val"] for b in batches)  # one epoch of every condition
    fixed = sum(run_seconds(cost, 0, b, n_eval) for b in batches)  # final evaluations of one seed
    k, epochs, cut = len(seeds), max_epochs, []
    if seconds is not None:
        for k in range(len(seeds), 0, -1):
            epochs = math.floor((seconds / k - fixed) / per_epoch)
            if epochs >= min(MIN_EPOCHS, max_epochs) or k == 1:
                break
        epochs = max(1, min(max_epochs, epochs))
    if k < len(seeds):
        cut.append(f"seeds {len(seeds)} -> {k} (epochs before seeds: a run should train {MIN_EPOCHS} epochs or more)")
    if epochs < max_epochs:
        cut.append(f"epochs {max_epochs} -> {epochs}")
    if epochs < MIN_EPOCHS:
        cut.append(f"fewer than {MIN_EPOCHS} epochs"
                   + (" even with one seed" if seconds is not None else "")
                   + ": the models are far from converged, so treat the verdicts as a smoke test"
                   + ("; give more --minutes" if seconds is not None else "; give more --epochs"))
    return {"epochs": epochs, "seeds": seeds[:k], "estimate": k * (fixed + epochs * per_epoch), "cut": cut}
