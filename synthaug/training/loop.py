"""The single training loop behind every recipe.

An *objective* owns its models and knows its loss and how to export a
checkpoint; this loop owns everything else: accelerate (multi-GPU with
``accelerate launch``/``torchrun``, bf16 autocast on CPU), an infinite
shuffled loader, EMA, periodic resumable state, loss logging and export.

Diffusion objectives have one optimiser over all their models. A GAN declares
``optimizer_groups`` (e.g. D then G, each with its models and learning rate);
every step then runs one update per group, in order, on the same batch, and
``loss`` receives the group's name.
"""
from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedDataParallelKwargs, broadcast, set_seed
from diffusers.training_utils import EMAModel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..precision import native_bf16


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 16
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple = (0.9, 0.999)
    warmup_steps: int = 100
    lr_schedule: str = "constant"  # after warmup: "constant" (the generators) or "cosine" to zero (the judge)
    grad_clip: float = 1.0
    mixed_precision: str = "bf16"  # "no" | "bf16" | "fp16"
    ema_decay: float | None = 0.999
    save_every: int = 250
    log_every: int = 25
    keep_states: int = 2
    num_workers: int = 0
    seed: int = 0
    max_minutes: float | None = None  # stop (and export) after this wall time; resume continues
    export_every: int | None = None  # also export out/exports/step_N every N steps (a quality curve of one run)
    extra: dict = field(default_factory=dict)


class Objective(Protocol):
    def trainable(self) -> dict[str, torch.nn.Module]: ...

    def loss(self, batch: dict, models: dict[str, torch.nn.Module]) -> tuple[torch.Tensor, dict]: ...

    def export(self, models: dict[str, torch.nn.Module], out: Path, info: dict) -> Path: ...

    # optional:
    # optimizer_groups() -> {group: {"models": [names], "lr": float, "betas": (b1, b2)}}, stepped in order
    # ema_models: names of the models to keep an EMA of (default: all)
    # prepare(dataset): fit data-derived settings (e.g. targets) before training


def lr_factor(cfg: TrainConfig) -> Callable[[int], float]:
    """Linear warmup, then constant or cosine decay to zero at ``cfg.steps``."""
    if cfg.lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', not {cfg.lr_schedule!r}")

    def factor(s: int) -> float:
        warm = min(1.0, (s + 1) / max(1, cfg.warmup_steps))
        if cfg.lr_schedule == "constant" or s < cfg.warmup_steps:
            return warm
        done = (s - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, done)))

    return factor


def _groups(objective, names: list[str], cfg: TrainConfig) -> dict[str, dict]:
    groups = objective.optimizer_groups() if hasattr(objective, "optimizer_groups") else {"": {"models": names}}
    return {g: {"models": list(spec["models"]), "lr": spec.get("lr", cfg.lr), "betas": tuple(spec.get("betas", cfg.betas))}
            for g, spec in groups.items()}


def _infinite(loader):
    epoch = 0
    while True:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def _latest_state(states_dir: Path) -> Path | None:
    states = sorted(states_dir.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
    return states[-1] if states else None


def train(objective: Objective, dataset, cfg: TrainConfig, out: str | Path, resume: bool = True,
          on_step: Callable[[int], None] | None = None, progress: bool = True, start: dict | None = None) -> Path:
    """Train ``objective`` on ``dataset`` into ``out``; returns the exported checkpoint folder.

    ``out/states/step_N`` hold resumable accelerate states, ``out/log.jsonl`` the
    losses, ``out/final`` the exported checkpoint (EMA weights when EMA is on);
    with ``cfg.export_every``, ``out/exports/step_N`` the same export along the way.
    ``on_step(step)`` is called once when training starts (after ``prepare`` and
    any resume) and after every step, so a caller (``synthaug fit``) can time
    steps and drive its own progress bar; ``progress=False`` hides this loop's bar.
    ``start`` (``{"init_from", "steps", "train_minutes"}``) is what the checkpoint the weights were
    initialised from had already trained: exports then report the totals, so a continued run's
    checkpoints say how long their weights trained in all (``steps_this_run`` keeps this run's share).
    """
    out = Path(out)
    states_dir = out / "states"
    # AcceleratorState is a process-wide singleton; a second run in one process
    # (tests, benchmarks) may ask for another precision, so start it afresh.
    AcceleratorState._reset_state()
    # several processes: DDP must be told when a step leaves some parameters without gradients (a GAN's G step)
    ddp = DistributedDataParallelKwargs(find_unused_parameters=getattr(objective, "find_unused_parameters", False))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = cfg.mixed_precision
    if precision == "bf16" and not native_bf16(device):
        precision = "no"  # emulated bf16 is many times slower than float32 (synthaug.precision)
        print(f"synthaug: no native bf16 on this {device}: training in float32", file=sys.stderr, flush=True)
    acc = Accelerator(mixed_precision=precision, cpu=device == "cpu", kwargs_handlers=[ddp])
    set_seed(cfg.seed)
    if hasattr(objective, "prepare"):
        objective.prepare(dataset)
    models = objective.trainable()
    names = list(models)
    groups = _groups(objective, names, cfg)
    opts = [torch.optim.AdamW([p for n in g["models"] for p in models[n].parameters()], lr=g["lr"], betas=g["betas"],
                              weight_decay=cfg.weight_decay) for g in groups.values()]
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, lr_factor(cfg)) for o in opts]
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=len(dataset) >= cfg.batch_size,
                        num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0)
    prepared = acc.prepare(*[models[n] for n in names], *opts, loader, *scheds)
    models = dict(zip(names, prepared[: len(names)]))
    k = len(names)
    opts, loader, scheds = prepared[k:k + len(opts)], prepared[k + len(opts)], prepared[k + len(opts) + 1:]
    steps_of = {g: (opt, sched, [p for n in spec["models"] for p in models[n].parameters()])
                for (g, spec), opt, sched in zip(groups.items(), opts, scheds)}
    ema = None
    if cfg.ema_decay:
        ema = {n: EMAModel(acc.unwrap_model(models[n]).parameters(), decay=cfg.ema_decay, use_ema_warmup=True,
                           power=3 / 4) for n in getattr(objective, "ema_models", names)}
        for e in ema.values():
            acc.register_for_checkpointing(e)

    step, seconds_before = 0, 0.0
    if resume and (last := _latest_state(states_dir)) is not None:
        acc.load_state(str(last))
        step = int(last.name.split("_")[1])
        seconds_before = json.loads((last / "progress.json").read_text(encoding="utf-8"))["train_seconds"]
        acc.print(f"resumed from {last}")
    elif states_dir.exists() and not resume:
        shutil.rmtree(states_dir)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2, default=str))

    def save_state():
        acc.save_state(str(states_dir / f"step_{step}"))
        if acc.is_main_process:
            progress = {"step": step, "train_seconds": seconds_before + time.time() - t0}
            (states_dir / f"step_{step}" / "progress.json").write_text(json.dumps(progress))
            for old in sorted(states_dir.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))[: -cfg.keep_states]:
                shutil.rmtree(old)

    def export(folder: Path) -> None:
        """Export the current (EMA) weights to ``folder``; the training weights are restored after."""
        if not acc.is_main_process:
            return
        export_models = {n: acc.unwrap_model(m) for n, m in models.items()}
        if ema:
            for n, e in ema.items():
                e.store(export_models[n].parameters())
                e.copy_to(export_models[n].parameters())
        before = start or {"steps": 0, "train_minutes": 0.0}
        info = {"steps": before["steps"] + step,
                "train_minutes": round(before["train_minutes"] + (seconds_before + time.time() - t0) / 60, 1),
                "batch_size": cfg.batch_size, "ema_decay": cfg.ema_decay, "mixed_precision": precision}
        if start:
            info.update(steps_this_run=step, init_from=start["init_from"])
        objective.export(export_models, folder, info)
        if ema:
            for n, e in ema.items():
                e.restore(export_models[n].parameters())

    t0, start_step = time.time(), step
    running: dict[str, float] = {}
    bar = tqdm(total=cfg.steps, initial=step, desc="train", disable=not (progress and acc.is_main_process),
               dynamic_ncols=True)
    batches = _infinite(loader)
    if on_step:
        on_step(step)
    while step < cfg.steps:
        batch = next(batches)
        for m in models.values():
            m.train()
        logs, total = {}, 0.0
        for g, (opt, sched, params) in steps_of.items():
            with acc.autocast():
                loss, group_logs = objective.loss(batch, models, g) if g else objective.loss(batch, models)
            acc.backward(loss)
            if cfg.grad_clip:
                acc.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
            for o in opts:  # a G loss backpropagates through D too: clear every group's gradients
                o.zero_grad(set_to_none=True)
            logs.update(group_logs)
            if g:
                logs[f"loss_{g}"] = loss.item()
            total += loss.item()
        if ema:
            for n, e in ema.items():
                e.step(acc.unwrap_model(models[n]).parameters())
        step += 1
        for key, v in {"loss": total, **logs}.items():
            running[key] = running.get(key, 0.0) + float(v)
        bar.update(1)
        if on_step:
            on_step(step)
        if step % cfg.log_every == 0 and acc.is_main_process:
            rec = {k: v / cfg.log_every for k, v in running.items()}
            rec.update(step=step, lr=scheds[-1].get_last_lr()[0], sec_per_step=(time.time() - t0) / max(1, step - start_step))
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")
            bar.set_postfix(loss=f"{rec['loss']:.4f}")
            running = {}
        out_of_time = cfg.max_minutes is not None and (time.time() - t0) / 60 > cfg.max_minutes
        if cfg.max_minutes is not None and acc.num_processes > 1:  # the main process's clock decides for all,
            flag = broadcast(torch.tensor([int(out_of_time)], device=acc.device))  # or one would wait forever
            out_of_time = bool(flag.item())
        if cfg.export_every and step % cfg.export_every == 0:
            export(out / "exports" / f"step_{step}")  # before the state: a resume never skips an export
        if step % cfg.save_every == 0 or step == cfg.steps or out_of_time:
            save_state()
        if out_of_time:
            acc.print(f"stopping at step {step}: max_minutes={cfg.max_minutes} reached (resume continues)")
            break
    bar.close()

    acc.wait_for_everyone()
    final = out / "final"
    export(final)
    acc.wait_for_everyone()  # other processes read the export next (cards, the next part of `synthaug fit`)
    return final

