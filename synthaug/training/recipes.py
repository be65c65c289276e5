"""Recipes: one YAML per generator and profile (``recipes/<kind>-<profile>.yaml``).

A recipe has three sections: ``objective`` (what is trained), ``model`` (the
objective's constructor arguments) and ``train`` (``TrainConfig`` fields), plus
``data.size`` (the square size cases are loaded at). Command-line overrides
are applied on top, so a profile is a starting point, never a copy to edit.
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import yaml

from ..errors import SynthaugError
from ..paths import recipes_root
from .loop import TrainConfig


def list_recipes() -> list[str]:
    return sorted(p.stem for p in recipes_root().glob("*.yaml"))


def load_recipe(kind: str, profile: str) -> dict:
    path = Path(profile) if profile.endswith((".yaml", ".yml")) else recipes_root() / f"{kind}-{profile}.yaml"
    if not path.is_file():
        raise SynthaugError(f"no recipe {path.name}; available: {', '.join(list_recipes())}")
    recipe = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for key in ("objective", "model", "train"):
        if key not in recipe:
            raise SynthaugError(f"recipe {path} lacks the section {key!r}")
    recipe["name"] = path.stem
    return recipe


def apply_overrides(recipe: dict, assignments: list[str]) -> dict:
    """``section.key=value`` (nested keys allowed; the value parsed as YAML), e.g. ``model.curvature_weight=0``."""
    for text in assignments:
        key, sep, value = text.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) < 2 or parts[0] not in ("model", "train", "data"):
            raise SynthaugError(f"--set {text!r}: expected SECTION.KEY=VALUE with SECTION model, train or data")
        node = recipe.setdefault(parts[0], {})
        for part in parts[1:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SynthaugError(f"--set {text!r}: {part} is not a section")
        node[parts[-1]] = yaml.safe_load(value)
    recipe.setdefault("overrides", []).extend(assignments)
    return recipe


def train_config(recipe: dict, **overrides) -> TrainConfig:
    known = {f.name for f in fields(TrainConfig)}
    values = {**recipe["train"], **{k: v for k, v in overrides.items() if v is not None}}
    unknown = set(values) - known
    if unknown:
        raise SynthaugError(f"unknown train settings {sorted(unknown)} in recipe {recipe.get('name')}")
    if values.get("mixed_precision") is False:  # YAML reads a bare `no` as false
        values["mixed_precision"] = "no"
    if values.get("mixed_precision", "bf16") not in ("no", "bf16", "fp16"):
        raise SynthaugError(f"train.mixed_precision must be no, bf16 or fp16, got {values['mixed_precision']!r}")
    return TrainConfig(**values)
