"""Loading the trained parts that both the pipelines and the training objectives read.

``load_vae`` lived in ``training/objectives/vae.py``, so ``pipelines/bus.py``
(assembling a checkpoint) imported training code that itself imports the
pipelines: a circle. Here it sits below both: it needs only the checkpoint
integrity helpers of ``pipelines.base``, and training imports it from here.
"""
from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL

from ..errors import SynthaugError
from .base import GENERATOR_INFO, load_errors, verify_checkpoint


def load_vae(path: str | Path) -> AutoencoderKL:
    """A diffusers AutoencoderKL from a folder, or from its ``vae/`` subfolder (synthaug and SD layouts)."""
    path = Path(path)
    if not path.is_dir():
        raise SynthaugError(f"no VAE at {path}: train one (synthaug train vae --out RUN) and pass RUN/final")
    sub = "vae" if (path / "vae" / "config.json").is_file() else None
    if (path / GENERATOR_INFO).is_file():  # a synthaug export: check its recorded file hashes
        verify_checkpoint(path)
    with load_errors(path):
        return AutoencoderKL.from_pretrained(str(path), subfolder=sub, dtype=torch.float32)
