"""Add synthetic (image, mask) cases to an nnU-Net v2 raw dataset, and take them out again.

``expand`` makes a raw folder hold ``round(ratio x real)`` synthetic cases
``<prefix>NNNNN`` next to the real ones, so nnU-Net trains on them without any
change to nnU-Net itself. The design goals, in order:

1. Real cases are never modified or removed, and ``revert`` restores the
   folder (dataset.json, splits_final.json) byte for byte.
2. Synthetic cases never validate a model: splits_final.json folds cover
   real cases only; a synthetic case joins the train list of every fold, or,
   when it was built on a real case's background (``background="real"``),
   only of the folds that train on that real case.
3. Every call converges to one state: case k is a pure function of (real
   data, generator checkpoint, base seed, k), so a killed run resumes, a new
   ratio adds or drops the highest indices, shards merge into the unsharded
   result, and a repeated call rewrites nothing. The networks run fixed
   blocks of MICRO_BATCH case indices (``sample_cases``), so the bytes do not
   depend on the batch size or the shard either; they may differ across
   devices and torch/oneDNN builds, which a manifest cannot pin.

Crash safety comes from the order of writes: a case is recorded as pending in
the manifest before its files are written, files are written atomically, and
files are deleted before their manifest entries; so every synthetic file on
disk is listed in a manifest (see ``synthaug.io.manifest``). Concurrency safety
comes from ``manifest.folder_lock``: one process changes a folder at a time
(shards of one expansion excepted: each writes only its own part).

The package: ``run`` (plan and generate), ``revert``, ``splits`` (folds over real cases),
``identity`` (which generator, engine and gate make the pixels) and ``files`` (the writes
expand and revert share).
"""
import importlib

from .revert import revert
from .splits import FOLDS, SPLITS_NAME, backgrounds_of, crossval_splits, write_splits, write_splits_file

# Loaded on first use: generating needs torch and diffusers (seconds to import), reverting and splitting
# do not, so `synthaug revert` and `synthaug splits` answer without them.
_LAZY = {"MAX_RATIO": "..data.conditions", "GeneratorRef": ".identity", "BACKGROUNDS": ".run", "expand": ".run",
         "shard_targets": ".run"}

__all__ = ["BACKGROUNDS", "FOLDS", "MAX_RATIO", "SPLITS_NAME", "GeneratorRef", "backgrounds_of", "crossval_splits",
           "expand", "revert", "shard_targets", "write_splits", "write_splits_file"]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value
