"""What a mix is made of: ``PairBank`` (pairs generated earlier, read lazily from disk) and the real cases'
conditions and backgrounds a generator is asked for. ``synthaug.mix.SyntheticMix`` puts them together."""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import SynthaugError
from ..io.images import mask_box, read_gray
from ..io.manifest import MANIFEST_NAME, Folder
from ..io.nnunet_raw import DATASET_JSON
from ..pipelines.base import Pair, PairGenerator
from ..pipelines.real_background import Background, RealBackgroundGenerator
from .conditions import ConditionSampler
from .datasets import LABEL_NAMES, PairDataset, manifest_label, read_label_png


class BankEntry(NamedTuple):
    name: str
    image_path: Path
    mask_path: Path
    label: str | None


class PairBank:
    """Pairs generated earlier and stored on disk; ``bank[k]`` reads pair k as a ``Pair``.

    Reads are lazy so a bank of thousands of pairs costs no memory and pickles
    to DataLoader workers as a list of paths.
    """

    def __init__(self, entries: list[BankEntry], root: Path | None = None):
        if not entries:
            raise SynthaugError(f"{root or 'the bank'} holds no synthetic pairs")
        missing = [str(p) for e in entries for p in (e.image_path, e.mask_path) if not Path(p).is_file()]
        if missing:
            raise SynthaugError(f"synthetic pair file(s) missing: {', '.join(missing[:3])}"
                                + (f" and {len(missing) - 3} more" if len(missing) > 3 else ""))
        self.entries, self.root = entries, root

    @classmethod
    def open(cls, folder: str | Path) -> "PairBank":
        """An nnU-Net raw folder expanded by ``synthaug expand`` (its synthetic cases only)
        or a folder written by ``synthaug sample`` (images/, masks/, optional pairs.json)."""
        folder = Path(folder)
        if (folder / MANIFEST_NAME).is_file():
            return cls(_expanded_entries(folder), folder)
        if (folder / "images").is_dir():
            return cls(_sample_entries(folder), folder)
        if (folder / DATASET_JSON).is_file():
            raise SynthaugError(f"{folder} is a raw folder synthaug has not expanded (no {MANIFEST_NAME}); "
                                "run `synthaug expand` on it first")
        raise SynthaugError(f"{folder} is neither a raw folder expanded by synthaug ({MANIFEST_NAME}) "
                            "nor a `synthaug sample` output (images/ and masks/)")

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, k: int) -> Pair:
        e = self.entries[k]
        mask = read_label_png(e.mask_path).astype(np.uint8)
        return Pair(read_gray(e.image_path), mask, {"label": e.label, "case_id": e.name})


def _expanded_entries(folder: Path) -> list[BankEntry]:
    """The finished synthetic cases of an expanded raw folder (never its real ones)."""
    expanded = Folder.load(folder)
    cases = expanded.main["cases"] if expanded.main else {}
    return [BankEntry(name, *expanded.files(name), manifest_label(entry)) for name, entry in cases.items()]


def _sample_entries(folder: Path) -> list[BankEntry]:
    meta = _read_pairs_json(folder / "pairs.json")
    return [BankEntry(p.stem, p, folder / "masks" / p.name, manifest_label(meta.get(p.stem, {})))
            for p in sorted((folder / "images").glob("*.png"))]


def _read_pairs_json(path: Path) -> dict[str, dict]:
    """Per-pair meta by name; accepts {name: meta}, a list of metas with "name", or either under "pairs"."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SynthaugError(f"{path} is not valid JSON: {e}") from None
    if isinstance(data, dict) and "pairs" in data:
        data = data["pairs"]
    if isinstance(data, list):
        data = {str(d.get("name")): d for d in data if isinstance(d, dict)}
    if not isinstance(data, dict):
        raise SynthaugError(f"{path}: expected per-pair meta keyed by pair name")
    return data


def _real_cases(real) -> list[tuple]:
    """(image uint8, mask bool, label, case id) of every real item, read without augmentation when possible."""
    if isinstance(real, PairDataset):  # no need to build (and augment) every item
        return [(r.image, r.mask, r.label, r.case_id) for r in real.records]
    items = (real[i] for i in range(len(real)))
    return [(np.round(it["image"][0].numpy() * 255).astype(np.uint8), it["mask"][0].numpy() > 0,
             LABEL_NAMES[int(it["label"])], str(it.get("case_id", i))) for i, it in enumerate(items)]


def real_condition_sampler(real) -> ConditionSampler:
    """Tumour types, lesion boxes and sizes of the real items, to ask a generator for the same."""
    cases = _real_cases(real)
    boxes = []
    for _, mask, _, _ in cases:
        box = mask_box(mask)
        boxes.append(tuple(box) if box else None)
    return ConditionSampler([c[2] for c in cases], boxes, [c[1].shape for c in cases])


def real_backgrounds(real) -> list[Background]:
    """The real cases of ``real`` (a dataset, or an nnU-Net raw folder: its real cases only) as
    backgrounds for the real-background mode of the bus generator."""
    if isinstance(real, (str, Path)):
        real = PairDataset.from_raw(real)
    return [Background(case_id, image, mask.astype(bool), label) for image, mask, label, case_id in _real_cases(real)]


def with_background(generator, background: str | None, real) -> PairGenerator:
    """``generator`` itself, or (``background="real"``) its real-background mode on the cases of ``real``."""
    if background in (None, "synthetic"):
        return generator
    if background != "real":
        raise SynthaugError(f"background must be 'synthetic' or 'real', not {background!r}")
    return RealBackgroundGenerator(generator, real_backgrounds(real))
