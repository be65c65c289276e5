"""Per-case generation conditions drawn from the real cases of a raw dataset.

Synthetic cases should look like the real training set in what a generator
can be told: the benign/malignant share, where and how large lesions are, and
the image size. ``ConditionSampler`` draws these per synthetic case from that
case's own seed, so a case's conditions depend on nothing but (real data,
seed): a resumed, re-batched or sharded expansion asks for the same thing.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from ..io.images import mask_box
from ..io.nnunet_raw import RawDataset
from ..pipelines.base import LABELS, Condition
from .datasets import read_label_png

Box = tuple[float, float, float, float]
MAX_RATIO = 10  # synthetic cases per real case, at most (expand and SyntheticMix): 1e9 would fill the memory
_SALT = 0x5EED_C0D1  # keeps these draws independent of the generator's own use of the seed


def _valid_box(box) -> Box | None:
    """``box`` as an (x0, y0, x1, y1) tuple inside [0, 1]; None when missing, malformed or empty."""
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        return None
    return (x0, y0, x1, y1) if 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 else None


def restrict(condition: Condition, fields) -> Condition:
    """Keep only the Condition fields a generator uses (the others become None)."""
    unused = [f.name for f in dataclasses.fields(condition) if f.name not in fields]
    return dataclasses.replace(condition, **{name: None for name in unused})


class ConditionSampler:
    """Draws (Condition, (height, width)) per seed from real tumour types, lesion boxes and sizes."""

    def __init__(self, labels: Sequence[str | None], boxes: Sequence[Box | None], sizes: Sequence[tuple[int, int]]):
        """One entry per real case: its tumour type (or None), lesion box (or None) and size."""
        if not sizes:
            raise ValueError("ConditionSampler needs at least one real case")
        known = [l for l in labels if l in LABELS]
        self.p_malignant = (sum(l == "malignant" for l in known) / len(known)) if known else None
        all_boxes = [b for b in boxes if b is not None]
        self.boxes = {None: all_boxes}
        for label in LABELS:  # a type without any lesion box borrows the boxes of all cases
            self.boxes[label] = [b for l, b in zip(labels, boxes) if l == label and b is not None] or all_boxes
        self.sizes = [tuple(int(v) for v in s) for s in sizes]

    @classmethod
    def from_raw(cls, raw: RawDataset, real_cases: Sequence[str]) -> "ConditionSampler":
        """Use case_metadata.json labels and boxes; boxes missing there come from the label files."""
        meta = raw.metadata()
        sizes = raw.case_sizes()
        labels, boxes = [], []
        for case in sorted(real_cases):
            entry = meta.get(case) or {}
            labels.append(entry.get("label") if entry.get("label") in LABELS else None)
            box = _valid_box(entry.get("box"))
            if box is None:
                box = _valid_box(mask_box(read_label_png(raw.label_path(case))))
            boxes.append(box)
        return cls(labels, boxes, [sizes[c] for c in sorted(real_cases)])

    def draw(self, seed: int) -> tuple[Condition, tuple[int, int]]:
        """Conditions and output (height, width) of the synthetic case with pair seed ``seed``."""
        rng = np.random.default_rng([int(seed), _SALT])
        label = None
        if self.p_malignant is not None:
            label = "malignant" if rng.random() < self.p_malignant else "benign"
        pool = self.boxes[label]
        box = pool[int(rng.integers(len(pool)))] if pool else None
        size = self.sizes[int(rng.integers(len(self.sizes)))]
        return Condition(label=label, box=box), size
