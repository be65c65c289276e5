"""Where synthaug finds data, shipped checkpoints and recipes."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# The generator expand, sample, demo and the nnU-Net trainer use unless told otherwise (its shipped checkpoint).
DEFAULT_GENERATOR = "bus"


def data_root() -> Path:
    """Public data sets (BUSI, STU): ``$SYNTHAUG_DATA``, default ``../shared/data`` next to the repo."""
    env = os.environ.get("SYNTHAUG_DATA")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "data")


def checkpoints_root() -> Path:
    """Shipped checkpoints: ``$SYNTHAUG_CHECKPOINTS``, default ``checkpoints/`` in the repo."""
    env = os.environ.get("SYNTHAUG_CHECKPOINTS")
    return Path(env) if env else REPO_ROOT / "checkpoints"


def recipes_root() -> Path:
    return REPO_ROOT / "recipes"


def cache_root() -> Path:
    """Derived files synthaug can always rebuild (quality judges, exported engine models):
    ``$SYNTHAUG_CACHE``, default ``$XDG_CACHE_HOME/synthaug`` or ``~/.cache/synthaug``. Kept outside
    user folders so ``revert`` stays exact and a checkpoint folder's hash never changes."""
    env = os.environ.get("SYNTHAUG_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "synthaug"
