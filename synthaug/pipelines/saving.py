"""Saving diffusers pipelines as synthaug checkpoint folders (fp16 to stay git-sized)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from diffusers import ModelMixin

from .base import GENERATOR_INFO


def save_pipeline(pipe, path: str | Path, info: dict, fp16: bool = True) -> Path:
    """``pipe.save_pretrained`` with every model halved to fp16 (loading upcasts), plus synthaug.json."""
    path = Path(path)
    if fp16:
        comps = {k: (torch.nn.Module.to(copy.deepcopy(v), torch.float16) if isinstance(v, ModelMixin) else v)
                 for k, v in pipe.components.items()}
        pipe = type(pipe)(**comps)
    pipe.save_pretrained(str(path), safe_serialization=True)
    (path / GENERATOR_INFO).write_text(json.dumps(info, indent=2) + "\n")
    return path
