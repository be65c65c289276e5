"""Objectives by name: what each recipe trains. Add one by registering it here."""
from __future__ import annotations

from ...errors import SynthaugError


def create_objective(kind: str, model_cfg: dict):
    if kind in ("pig", "ddpm-image"):
        from .pig import PigObjective

        return PigObjective(image_only=(kind == "ddpm-image"), **model_cfg)
    raise SynthaugError(f"no training objective {kind!r}; available: pig, ddpm-image")
