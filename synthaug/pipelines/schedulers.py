"""Sampler choice for every diffusion generator: diffusers schedulers by short name.

Generators train with one noise schedule (stored with the checkpoint) and
sample with any solver built from that schedule's config, so a checkpoint
trained once can be sampled with 256-step DDIM or a 20-step DPM-Solver++.
"""
from __future__ import annotations

from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

from ..errors import SynthaugError

SCHEDULERS = {
    "ddim": (DDIMScheduler, {}),
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "unipc": (UniPCMultistepScheduler, {}),
    "ddpm": (DDPMScheduler, {}),
}


def make_scheduler(name: str, base_config):
    """A fresh scheduler of kind ``name`` sharing ``base_config``'s betas and T."""
    try:
        cls, extra = SCHEDULERS[name]
    except KeyError:
        raise SynthaugError(f"unknown scheduler {name!r}; choose from {', '.join(SCHEDULERS)}") from None
    return cls.from_config(base_config, **extra)


def training_scheduler(num_train_timesteps: int = 1024, beta_start: float = 1e-4, beta_end: float = 0.02):
    """The forward process of the PIG paper: linear betas 1e-4..0.02, T = 1024."""
    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_start=beta_start,
        beta_end=beta_end,
        beta_schedule="linear",
        clip_sample=True,
    )
