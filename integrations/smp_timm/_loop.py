"""The epoch loop both integrations share: AdamW, cosine LR, optional bf16 autocast, tqdm,
and an optional per-epoch training state so a killed run resumes where it stopped."""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler
from tqdm.auto import tqdm

from synthaug.precision import use_bf16


def fit(model: torch.nn.Module, dataset, step_loss: Callable[[torch.nn.Module, dict], torch.Tensor], epochs: int,
        batch_size: int = 16, lr: float = 1e-3, device: str = "cpu", bf16: bool = True, seed: int = 0,
        num_workers: int = 0, desc: str = "train", min_batches: int | None = None, channels_last: bool = True,
        progress: bool = True,
        on_epoch_end: Optional[Callable[[int, float], bool]] = None,
        state_path: Optional[str | Path] = None, extra_state=None) -> torch.nn.Module:
    """Train ``model`` in place for ``epochs`` on ``dataset`` (any synthaug item dataset).

    ``on_epoch_end(epoch, mean training loss)`` runs after every epoch (e.g. to
    measure a validation set and keep the best weights); returning True stops
    training there (early stopping). The model is put back in train mode after it.

    ``state_path``: after every epoch (and its ``on_epoch_end``) everything the
    next epoch depends on is saved there: weights, optimiser, LR schedule, the
    shuffling generator, the global torch/numpy/python RNGs (augmentations draw
    from them), the next epoch, and ``extra_state`` (any object with
    ``state_dict()``/``load_state_dict()``: the caller's own progress, e.g. its
    best checkpoint). If the file exists at the start, all of it is restored
    and training continues from the next epoch, so a run killed mid-way (long
    runs outlive a session) ends exactly as it would have uninterrupted instead
    of restarting from epoch 0. The caller deletes the file once done with it.

    ``min_batches``: an epoch of a small dataset is stretched to this many batches by drawing
    further shuffled passes over it (a floor of optimiser steps, so 10% of the real cases trains
    as many steps as 100% and validation runs on the same step grid); larger datasets are unchanged.

    ``channels_last``: weights and images in that layout, which oneDNN's CPU convolutions run faster
    (benchmarks/results/seg_epoch_speed.md); the sums differ from the default layout's in the last bits.

    ``progress=False`` hides the loop's own bar (a caller showing one bar for many runs).
    """
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, generator=g, num_workers=num_workers,
                        drop_last=len(dataset) > batch_size, **epoch_sampling(len(dataset), batch_size, min_batches, g))
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device, memory_format=layout).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * len(loader)))
    amp = torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16,
                           enabled=use_bf16(bf16, device))
    parts = {"model": model, "optimizer": opt, "scheduler": sched, "extra": extra_state}
    start = load_training_state(state_path, parts, g) if state_path and os.path.isfile(state_path) else 0
    for epoch in tqdm(range(start, epochs), desc=desc, leave=False, initial=start, total=epochs,
                      disable=not progress):
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        total, n = 0.0, 0
        for batch in loader:
            batch = {k: (to_device(v, device, layout) if torch.is_tensor(v) else v) for k, v in batch.items()}
            with amp:
                loss = step_loss(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, n = total + float(loss.detach()), n + 1
        stop = False
        if on_epoch_end is not None:
            stop = bool(on_epoch_end(epoch, total / max(n, 1)))
            model.train()
        if state_path:  # a stopped run saves "no epoch left", so resuming it does not train on
            save_training_state(state_path, parts, g, epochs if stop else epoch + 1)
        if stop:
            break
    return model.eval()


def epoch_sampling(n: int, batch_size: int, min_batches: int | None, g: torch.Generator) -> dict:
    """DataLoader keywords: plain shuffling, or passes over the data until ``min_batches`` full batches."""
    if not min_batches or n // batch_size >= min_batches:
        return {"shuffle": True}
    return {"sampler": RandomSampler(range(n), num_samples=min_batches * batch_size, generator=g)}


def to_device(t: torch.Tensor, device: str, layout=torch.channels_last) -> torch.Tensor:
    """A batch tensor on ``device``; images (N, C, H, W) in the model's memory layout."""
    t = t.to(device)
    return t.contiguous(memory_format=layout) if t.ndim == 4 else t


def save_training_state(path: str | Path, parts: dict, g: torch.Generator, next_epoch: int) -> None:
    """``parts``' state dicts, the RNG states and ``next_epoch``, written to a temp file then renamed
    (a kill mid-write leaves the previous epoch's file)."""
    state = {name: p.state_dict() for name, p in parts.items() if p is not None}
    state.update(next_epoch=next_epoch, rng={"loader": g.get_state(), "torch": torch.get_rng_state(),
                                             "numpy": np.random.get_state(), "python": random.getstate()})
    tmp = Path(f"{path}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_training_state(path: str | Path, parts: dict, g: torch.Generator) -> int:
    """Restore what ``save_training_state`` wrote; returns the epoch to continue from."""
    state = torch.load(path, map_location="cpu", weights_only=False)  # our own file: RNG tuples, numpy arrays
    for name, p in parts.items():
        if p is not None:
            p.load_state_dict(state[name])
    rng = state["rng"]
    g.set_state(rng["loader"])
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    return int(state["next_epoch"])


@torch.no_grad()
def predict(model: torch.nn.Module, dataset, batch_size: int = 32, device: str = "cpu", bf16: bool = True,
            channels_last: bool = True):
    """Yield (batch, model output as float32) over ``dataset`` in order."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device, memory_format=layout).eval()
    amp = torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16,
                           enabled=use_bf16(bf16, device))
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        with amp:
            out = model(to_device(batch["image"], device, layout))
        yield batch, out.float().cpu()
