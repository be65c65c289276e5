"""Saving diffusers pipelines as synthaug checkpoint folders (fp16 to stay git-sized)."""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from diffusers import ModelMixin

from .base import write_generator_info


def save_pipeline(pipe, path: str | Path, info: dict, fp16: bool = True) -> Path:
    """``pipe.save_pretrained`` with every model halved to fp16 (loading upcasts), plus synthaug.json
    recording the sha256 of every file saved (verified on load)."""
    path = Path(path)
    if fp16:
        comps = {k: (torch.nn.Module.to(copy.deepcopy(v), torch.float16) if isinstance(v, ModelMixin) else v)
                 for k, v in pipe.components.items()}
        pipe = type(pipe)(**comps)
    pipe.save_pretrained(str(path), safe_serialization=True)
    write_generator_info(path, info)
    return path
