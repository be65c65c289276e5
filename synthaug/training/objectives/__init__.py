"""Objectives by name: what each recipe trains. Add one by registering it here."""
from __future__ import annotations

from ...errors import SynthaugError

OBJECTIVES = ("pig", "ddpm-image", "scmg", "vae", "ldm", "controlnet", "judge")


def create_objective(kind: str, model_cfg: dict):
    if kind in ("pig", "ddpm-image"):
        from .pig import PigObjective

        return PigObjective(image_only=(kind == "ddpm-image"), **model_cfg)
    if kind == "scmg":
        from .scmg import ScmgObjective

        return ScmgObjective(**model_cfg)
    if kind == "vae":
        from .vae import VaeObjective

        return VaeObjective(**model_cfg)
    if kind in ("ldm", "controlnet"):
        from .ldm import LatentDiffusionObjective

        return LatentDiffusionObjective(stage=kind, **model_cfg)
    if kind == "judge":
        from .judge import JudgeObjective

        return JudgeObjective(**model_cfg)
    raise SynthaugError(f"no training objective {kind!r}; available: {', '.join(OBJECTIVES)}")
