"""One recipe run, as ``synthaug train KIND`` does it: recipe -> objective + data -> loop -> card.

``synthaug train`` and ``synthaug fit`` both call ``run_recipe``, so a part
trained by ``fit`` is exactly what ``train`` would have made from the same
recipe, data and step count.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ..pipelines.base import GENERATOR_INFO
from .cards import record_training_data, write_train_card
from .data import training_dataset
from .loop import train
from .objectives import create_objective
from .recipes import train_config


def starting_point(init_from: str | Path) -> dict:
    """What an exported checkpoint had already trained (steps, minutes; 0 for weights from elsewhere),
    so a run continued from it exports its totals."""
    info_file = Path(init_from) / GENERATOR_INFO
    info = json.loads(info_file.read_text(encoding="utf-8")) if info_file.is_file() else {}
    return {"init_from": str(init_from), "steps": int(info.get("steps") or 0),
            "train_minutes": float(info.get("train_minutes") or 0.0)}


def run_recipe(recipe: dict, data: str | Path, out: str | Path, *, steps: int | None = None,
               batch_size: int | None = None, max_minutes: float | None = None, resume: bool = True,
               init_from: str | Path | None = None, dataset=None, on_step: Callable[[int], None] | None = None,
               progress: bool = True, train_overrides: dict | None = None) -> Path:
    """Train ``recipe`` on the training cases of ``data`` into ``out``; returns ``out/final``.

    ``dataset`` skips reading ``data`` again (``fit`` loads it once per size);
    ``train_overrides`` replaces further ``TrainConfig`` fields (warmup, save_every, ...).
    """
    import torch
    from accelerate import PartialState

    cfg = train_config(recipe, steps=steps, batch_size=batch_size, max_minutes=max_minutes,
                       **(train_overrides or {}))
    objective = create_objective(recipe["objective"], recipe["model"])
    start = None
    if init_from:
        objective.init_from(init_from)
        start = starting_point(init_from)
    if dataset is None:
        dataset = training_dataset(data, size=recipe.get("data", {}).get("size", 128))
    final = train(objective, dataset, cfg, out, resume=resume, on_step=on_step, progress=progress, start=start)
    state = PartialState(cpu=not torch.cuda.is_available())  # as the loop's Accelerator: gloo without a GPU
    if state.is_main_process:  # one writer; the others wait so they never read a half-written card
        record_training_data(final, data, dataset)
        write_train_card(final, recipe, data=data, n_cases=len(dataset))
    state.wait_for_everyone()
    return final
