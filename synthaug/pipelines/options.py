"""Options every generating call takes, checked before anything loads: sampler steps and the torch device."""
from __future__ import annotations

import numpy as np

from ..errors import SynthaugError

DEVICE_TYPES = ("cpu", "cuda", "mps")


def check_steps(steps) -> int | None:
    """Sampler steps must be a positive integer (None: the checkpoint default); 0 or -5 would
    silently mean "default" or pure noise."""
    if steps is None:
        return None
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise SynthaugError(f"steps must be an integer >= 1 (sampler steps), got {steps!r}; "
                            "leave it unset for the checkpoint default")
    return int(steps)


def available_devices() -> list[str]:
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def check_device(device) -> str:
    """A torch device this machine has, checked before any work (``tpu9`` or ``cuda`` without a GPU
    would otherwise fail deep inside torch)."""
    import torch

    here = ", ".join(available_devices())
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        d = None
    if d is None or d.type not in DEVICE_TYPES:
        raise SynthaugError(f"unknown device {device!r}; valid choices: cpu, cuda, cuda:N, mps (available here: {here})")
    if d.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise SynthaugError(f"device {device!r} asked for but {why}; use --device cpu (available here: {here})")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise SynthaugError(f"device {device!r}: there are {torch.cuda.device_count()} GPU(s) "
                                f"(available here: {here})")
    if d.type == "mps" and "mps" not in here:
        raise SynthaugError(f"device {device!r}: Apple MPS is not available here (available here: {here})")
    return str(device)
