"""bf16 autocast only where the hardware runs bf16 natively.

Why: on a CPU without AVX512-BF16 or AMX, torch emulates bf16 and autocast is far slower
than float32 (measured on an AVX2-only AMD EPYC: a 64-channel 3x3 conv 62x slower, a
latent PIG training step 20x). Every "bf16" request (training recipes, pipelines, judges, the
benchmarks' segmenters) therefore falls back to float32 there. The pixels of the two
differ by a few grey levels, so the torch engine's identity says which one ran
(``pipelines.engines.resolve_engine``: ``torch`` or ``torch-fp32``).
``SYNTHAUG_BF16=0`` / ``1`` forces either way (1 on a CPU without bf16 is slow, not wrong).
"""
from __future__ import annotations

import os

import torch

from .errors import SynthaugError


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """True when bf16 autocast on ``device`` runs natively (or ``SYNTHAUG_BF16`` forces it)."""
    forced = os.environ.get("SYNTHAUG_BF16", "").strip()
    if forced:
        if forced not in ("0", "1"):
            raise SynthaugError(f"SYNTHAUG_BF16 must be 0 or 1, got {forced!r}")
        return forced == "1"
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if kind == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # an older torch or a build without oneDNN
            return False
    return False


def use_bf16(requested: bool, device: str | torch.device = "cpu") -> bool:
    """Whether a bf16 request on ``device`` is carried out (float32 otherwise)."""
    return bool(requested) and native_bf16(device)



def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what ``platform`` knows."""
    import platform
    from pathlib import Path

    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.is_file() else []
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")),
                platform.processor() or "unknown CPU")


def machine() -> str:
    """The CPU, whether it runs bf16 natively and the torch threads: what an absolute time must name."""
    return f"{cpu_name()}, {'native' if native_bf16() else 'no native'} bf16, {torch.get_num_threads()} torch thread(s)"
