"""Torch datasets of (image, lesion mask) pairs for smp/timm-style training loops.

Every dataset in ``synthaug.data`` returns the same item dict, built by
``make_item``, so real and synthetic items collate into one batch::

    {"image": float32 1xHxW in [0, 1], "mask": float32 1xHxW in {0, 1},
     "label": 0 benign | 1 malignant | -1 unknown, "synthetic": bool, "case_id": str}

The public sets are small (BUSI train: 518 PNGs), so ``PairDataset`` loads and
resizes everything once at construction: items are then cheap array slices,
and pickling the dataset to DataLoader workers needs no file access.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import SynthaugError
from ..io.images import read_gray, read_mask, resize_image, resize_mask

LABEL_CODES = {"benign": 0, "malignant": 1, None: -1}
LABEL_NAMES = {v: k for k, v in LABEL_CODES.items()}


class Record(NamedTuple):
    """One in-memory case; ``label`` is "benign", "malignant" or None."""

    image: np.ndarray  # uint8 HxW
    mask: np.ndarray  # bool (or {0,1}) HxW
    label: str | None
    case_id: str
    synthetic: bool = False


def label_code(label: str | None) -> int:
    """Integer class of a tumour-type name; -1 when unknown."""
    try:
        return LABEL_CODES[label]
    except KeyError:
        raise SynthaugError(f"unknown tumour type {label!r}; expected benign, malignant or None") from None


def as_size(size) -> tuple[int, int] | None:
    """Normalise ``size`` (an int for square, or (height, width)) to a tuple."""
    if size is None:
        return None
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if int(h) <= 0 or int(w) <= 0:
        raise SynthaugError(f"size {size!r} must be positive")
    return int(h), int(w)


def make_item(image: np.ndarray, mask: np.ndarray, label: str | None, case_id: str,
              synthetic: bool, size: tuple[int, int] | None = None) -> dict:
    """The item dict shared by every synthaug dataset (resizing first when ``size`` is set)."""
    if size is not None:
        image, mask = resize_image(image, size), resize_mask(mask, size)
    return {
        "image": torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)[None],
        "mask": torch.from_numpy(np.asarray(mask) > 0).float()[None],
        "label": label_code(label),
        "synthetic": bool(synthetic),
        "case_id": str(case_id),
    }


def read_label_png(path: str | Path) -> np.ndarray:
    """Boolean mask of an nnU-Net label or synthaug mask PNG: any non-zero value is lesion
    (labels are stored as {0, 1}, so the 0/255 threshold of ``read_mask`` would drop them)."""
    return read_mask(path, threshold=0)


def manifest_label(entry: dict) -> str | None:
    """Tumour type a synthetic pair was generated for, from its expansion-manifest entry
    ("conditions") or its ``synthaug sample`` meta ("label" or "condition")."""
    cond = entry.get("conditions") or entry.get("condition") or {}
    return entry.get("label") or cond.get("label")


class PairDataset(Dataset):
    """In-memory (image, mask, label, case_id) cases, resized once to a fixed ``size``.

    ``size`` is an int (square) or (height, width); None keeps native sizes
    (then batch with batch_size=1 or a resizing ``transform``), and becomes
    the common size when all cases share one, so ``SyntheticMix`` resizes
    synthetic items to match. ``transform``
    receives and returns the item dict: the hook for augmentation.
    """

    def __init__(self, records: Iterable[Sequence], size=None, transform: Callable[[dict], dict] | None = None):
        self.size = as_size(size)
        self.transform = transform
        self.records: list[Record] = [self._prepare(Record(*r)) for r in records]
        if not self.records:
            raise SynthaugError("PairDataset needs at least one case")
        shapes = {r.image.shape for r in self.records}
        if self.size is None and len(shapes) == 1:  # e.g. a subset of a resized set: mixes match it
            self.size = shapes.pop()

    def _prepare(self, r: Record) -> Record:
        image, mask = np.asarray(r.image), np.asarray(r.mask)
        if image.ndim != 2 or image.dtype != np.uint8:
            raise SynthaugError(f"case {r.case_id}: image must be uint8 HxW, got {image.dtype} {image.shape}")
        if mask.shape != image.shape:
            raise SynthaugError(f"case {r.case_id}: mask {mask.shape} and image {image.shape} differ in size")
        label_code(r.label)  # validate early, not at the first batch
        if self.size is not None:
            image, mask = resize_image(image, self.size), resize_mask(mask, self.size)
        return r._replace(image=image, mask=mask.astype(bool))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        item = make_item(*self.records[index])
        return self.transform(item) if self.transform else item

    @property
    def labels(self) -> list[int]:
        """Integer label of every case, without building items (for class shares)."""
        return [label_code(r.label) for r in self.records]

    # ------------------------------------------------------------------------- constructors
    @classmethod
    def from_raw(cls, raw_root: str | Path, cases: Sequence[str] | None = None, size=None,
                 include_synthetic: bool = False, transform=None) -> "PairDataset":
        """Training cases of an nnU-Net v2 raw folder; labels from its case_metadata.json.

        Synthetic cases an expansion added are left out unless ``include_synthetic``,
        so evaluation or a real-only baseline never sees them by accident.
        """
        from ..io.manifest import Folder

        folder = Folder.load(raw_root)  # lists real cases apart from synthetic ones
        synthetic = folder.main["cases"] if folder.main else {}  # finished synthetic cases only
        metadata = folder.raw.metadata()
        if cases is None:
            ids = folder.real + (list(synthetic) if include_synthetic else [])
        else:
            unknown = sorted(set(cases) - set(folder.real) - set(synthetic))
            if unknown:
                raise SynthaugError(f"{folder.root} has no case(s) {', '.join(unknown[:5])}")
            ids = list(cases)

        def record(case: str) -> Record:
            label = manifest_label(synthetic[case]) if case in synthetic else (metadata.get(case) or {}).get("label")
            image_path, label_path = folder.files(case)
            return Record(read_gray(image_path), read_label_png(label_path), label, case, case in synthetic)

        return cls((record(c) for c in ids), size=size, transform=transform)

    @classmethod
    def _from_public(cls, rows: Iterable[dict], size, transform) -> "PairDataset":
        return cls(((r["image"], r["mask"], r["label"], r["case_id"]) for r in rows), size=size, transform=transform)

    @classmethod
    def from_busi(cls, src: str | Path, split: str = "train", size=None, transform=None) -> "PairDataset":
        """BUSI (benign + malignant) cases of ``split`` from the folder holding Dataset_BUSI_with_GT."""
        from ..io.public_sets import iter_busi

        return cls._from_public(iter_busi(src, split=split), size, transform)

    @classmethod
    def from_stu(cls, src: str | Path, size=None, transform=None) -> "PairDataset":
        """STU-Hospital (42 cases, no tumour type): an external test set."""
        from ..io.public_sets import iter_stu

        return cls._from_public(iter_stu(src), size, transform)
