"""An nnU-Net v2 raw dataset folder (``DatasetNNN_Name``), validated for synthaug.

synthaug writes 2D single-channel PNG pairs with binary lesion masks, so it
refuses up front any folder it could not extend faithfully (3D, multi-channel,
multi-label, inconsistent counts) with a message that says what is wrong,
instead of writing cases nnU-Net would later reject or silently mis-train on.

Layout (nnU-Net v2 naming): ``imagesTr/CASE_0000.png``, ``labelsTr/CASE.png``
and ``dataset.json`` with channel_names, labels, file_ending and numTraining.
An optional ``case_metadata.json`` (written by synthaug's converters) carries
per-case tumour type, original size and lesion box.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from ..errors import SynthaugError
from .images import read_json

DATASET_JSON = "dataset.json"
METADATA_JSON = "case_metadata.json"
REQUIRED_KEYS = ("channel_names", "labels", "file_ending", "numTraining")
SUPPORTED_ENDINGS = (".png",)
CHANNEL = "_0000"  # the only channel synthaug reads or writes
_FOLDER_RE = re.compile(r"Dataset(\d{3})_(.+)")
_IMAGE_RE = re.compile(r"(.+)_(\d{4})")
_GRAY_MODES = ("L", "1")
# what a user with 0/255 masks runs, in the raw folder (rewrites labelsTr in place)
ZERO_ONE_FIX = ("python -c \"import sys, numpy as np; from PIL import Image; "
                "[Image.fromarray((np.asarray(Image.open(p)) > 127).astype(np.uint8)).save(p) "
                "for p in sys.argv[1:]]\" labelsTr/*.png")


def _listing(names: Iterable[str], limit: int = 5) -> str:
    """'a, b, c and 4 more': error messages stay one readable line."""
    names = sorted(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def read_dataset_json(root: Path) -> dict:
    """Parse and check ``root/dataset.json`` (keys, 2D PNG, one channel, binary labels)."""
    path = root / DATASET_JSON
    dj = read_json(path, f"{root} has no {DATASET_JSON}; is it an nnU-Net v2 raw dataset folder (DatasetNNN_Name)?")
    if not isinstance(dj, dict):
        raise SynthaugError(f"{path} must hold a JSON object, not {type(dj).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in dj]
    if missing:
        raise SynthaugError(f"{path} is missing required key(s) {', '.join(missing)} "
                            f"(nnU-Net v2 needs {', '.join(REQUIRED_KEYS)})")
    if dj["file_ending"] not in SUPPORTED_ENDINGS:
        raise SynthaugError(f"{path}: file_ending {dj['file_ending']!r} is not supported; synthaug generates "
                            "2D images, so only 2D PNG datasets (file_ending '.png') are supported")
    if str(dj.get("tensorImageSize", "2D")).upper() != "2D":
        raise SynthaugError(f"{path} declares {dj['tensorImageSize']} volumes; "
                            "synthaug needs 2D images (2D PNG datasets)")
    channels = dj["channel_names"]
    if not isinstance(channels, dict) or len(channels) != 1:
        raise SynthaugError(f"{path} declares {len(channels) if isinstance(channels, dict) else channels!r} channels; "
                            "only single-channel images are supported")
    _check_binary_labels(dj["labels"], path)
    n = dj["numTraining"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise SynthaugError(f"{path}: numTraining must be a non-negative integer, got {n!r}")
    return dj


def _check_binary_labels(labels, path: Path) -> None:
    values = sorted(labels.values(), key=str) if isinstance(labels, dict) else None
    if values == [0, 255]:
        raise SynthaugError(f"{path}: labels {labels!r} look like 0/255 masks; nnU-Net wants background=0 and "
                            "the lesion=1 in dataset.json and in every label map. Set the lesion to 1 and convert "
                            f"the label maps, e.g. {ZERO_ONE_FIX}")
    if values != [0, 1] or any(isinstance(v, bool) for v in values):
        raise SynthaugError(f"{path}: labels {labels!r} are not background=0 plus one class=1; "
                            "multi-label datasets are not supported yet, only binary lesion masks")


class RawDataset:
    """A validated nnU-Net v2 raw folder; open it with ``RawDataset.open(root)``."""

    def __init__(self, root: Path, dataset_json: dict, cases: list[str], sizes: dict[str, tuple[int, int]]):
        self.root = root
        self.dataset_json = dataset_json
        self.file_ending: str = dataset_json["file_ending"]
        m = _FOLDER_RE.fullmatch(root.name)
        self.dataset_id, self.name = int(m.group(1)), m.group(2)
        self._cases = cases
        self._sizes = sizes

    @classmethod
    def open(cls, root: str | Path, *, check_count: bool = True,
             exclude: Callable[[str], bool] | None = None) -> "RawDataset":
        """Validate and open ``root``.

        ``exclude`` leaves matching cases out of the listing and the checks: the
        expander passes its synthetic-name matcher so that cases it is writing
        (maybe from a concurrent shard) are never half-seen as broken real ones.
        ``check_count=False`` skips the numTraining check, which an interrupted
        expansion legitimately breaks until it is resumed or reverted.
        """
        root = Path(root)
        if not root.is_dir():
            raise SynthaugError(f"raw dataset folder {root} does not exist")
        if not _FOLDER_RE.fullmatch(root.name):
            raise SynthaugError(f"{root.name!r} is not an nnU-Net v2 raw dataset folder name "
                                "(expected DatasetNNN_Name, e.g. Dataset501_BUSI)")
        dj = read_dataset_json(root)
        fe = dj["file_ending"]
        cases = _pair_cases(root, fe, exclude or (lambda case: False))
        sizes = {c: _image_size(root / "imagesTr" / f"{c}{CHANNEL}{fe}") for c in cases}
        for c in cases:
            _check_label(root / "labelsTr" / f"{c}{fe}", sizes[c])
        raw = cls(root, dj, cases, sizes)
        if check_count:
            raw.check_count()
        return raw

    def check_count(self) -> None:
        """numTraining must equal the cases on disk (nnU-Net checks this too, later and less clearly)."""
        n = self.dataset_json["numTraining"]
        if n != len(self._cases):
            hint = ""
            if any(self.root.glob("synthaug_manifest*.json")):
                hint = "; an expansion looks unfinished: rerun `synthaug expand` or run `synthaug revert`"
            raise SynthaugError(f"{self.root / DATASET_JSON}: numTraining is {n} but imagesTr/labelsTr hold "
                                f"{len(self._cases)} cases{hint}")

    # ------------------------------------------------------------------------- queries
    def case_ids(self) -> list[str]:
        """Sorted training case ids present in both imagesTr and labelsTr."""
        return list(self._cases)

    def image_path(self, case: str) -> Path:
        return self.root / "imagesTr" / f"{case}{CHANNEL}{self.file_ending}"

    def label_path(self, case: str) -> Path:
        return self.root / "labelsTr" / f"{case}{self.file_ending}"

    def case_sizes(self) -> dict[str, tuple[int, int]]:
        """(height, width) of every case, read from the image headers."""
        return dict(self._sizes)

    def metadata(self) -> dict[str, dict]:
        """Per-case metadata from ``case_metadata.json`` (its "cases" mapping); {} when absent."""
        path = self.root / METADATA_JSON
        if not path.is_file():
            return {}
        data = read_json(path, f"{path} is missing")
        cases = data.get("cases", data) if isinstance(data, dict) else None
        if not isinstance(cases, dict):
            raise SynthaugError(f"{path}: expected {{\"cases\": {{case_id: {{...}}}}}}")
        return cases


def _pair_cases(root: Path, fe: str, exclude: Callable[[str], bool]) -> list[str]:
    """Case ids with one ``_0000`` image and one label each; anything else is an error."""
    images_dir, labels_dir = root / "imagesTr", root / "labelsTr"
    for d in (images_dir, labels_dir):
        if not d.is_dir():
            raise SynthaugError(f"{root} has no {d.name}/ folder")

    def files(d: Path) -> list[str]:  # hidden files are temporaries of atomic writes
        return [p.name[: -len(fe)] for p in d.iterdir() if p.name.endswith(fe) and not p.name.startswith(".")]

    image_stems, label_stems = files(images_dir), files(labels_dir)
    stem_set, label_set = set(image_stems), set(label_stems)
    image_cases, unsuffixed = set(), []
    for stem in sorted(image_stems):
        m = _IMAGE_RE.fullmatch(stem)
        if m and exclude(m.group(1)):
            continue
        # 'case_0100.png' parses as channel 0100 of 'case' (and 'case_0000.png' as its channel 0): when the
        # label is labelsTr/case_0100.png, or 'case' has no channel 0000, the file just lacks its suffix
        if not m or (stem in label_set and m.group(1) not in label_set) or (
                m.group(2) != CHANNEL[1:] and f"{m.group(1)}{CHANNEL}" not in stem_set):
            if not exclude(stem):
                unsuffixed.append(stem)
            continue
        if m.group(2) != CHANNEL[1:]:
            raise SynthaugError(f"imagesTr/{stem}{fe} is channel {m.group(2)} of case {m.group(1)}; "
                                "only single-channel images are supported")
        image_cases.add(m.group(1))
    if unsuffixed:
        first = unsuffixed[0]
        more = f" (and {len(unsuffixed) - 1} more image(s) like it)" if len(unsuffixed) > 1 else ""
        raise SynthaugError(f"imagesTr/{first}{fe} does not follow nnU-Net naming CASE{CHANNEL}{fe}: it lacks the "
                            f"{CHANNEL} channel suffix{more}. nnU-Net v2 names the image of case {first} "
                            f"imagesTr/{first}{CHANNEL}{fe} (its label labelsTr/{first}{fe}); rename the image(s) "
                            f"to end in {CHANNEL}{fe}")
    label_cases = {c for c in label_stems if not exclude(c)}
    if image_cases != label_cases:
        parts = []
        if image_cases - label_cases:
            parts.append(f"images without labels: {_listing(image_cases - label_cases)}")
        if label_cases - image_cases:
            parts.append(f"labels without images: {_listing(label_cases - image_cases)}")
        raise SynthaugError(f"{root}: imagesTr and labelsTr do not match ({'; '.join(parts)})")
    return sorted(image_cases)


def _image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the header; rejects multi-frame (3D) and multi-channel images."""
    try:
        with Image.open(path) as im:
            if getattr(im, "n_frames", 1) > 1:
                raise SynthaugError(f"{path} holds {im.n_frames} frames, a 3D volume; synthaug needs 2D images")
            if im.mode not in _GRAY_MODES:
                raise SynthaugError(f"{path} has image mode {im.mode}; only single-channel 8-bit grayscale images "
                                    "are supported")
            return im.height, im.width
    except OSError as e:
        raise SynthaugError(f"cannot read {path}: {e}") from None


def _check_label(path: Path, size: tuple[int, int]) -> None:
    """A label map must be a 2D {0, 1} array of its image's size."""
    try:
        with Image.open(path) as im:
            if getattr(im, "n_frames", 1) > 1:
                raise SynthaugError(f"{path} holds {im.n_frames} frames, a 3D volume; synthaug needs 2D label maps")
            arr = np.asarray(im)
    except OSError as e:
        raise SynthaugError(f"cannot read {path}: {e}") from None
    if arr.ndim != 2:
        raise SynthaugError(f"{path} is a {arr.shape[-1]}-channel image; label maps must be single-channel")
    if arr.shape != size:
        raise SynthaugError(f"{path} is {arr.shape[0]}x{arr.shape[1]} but its image is {size[0]}x{size[1]}")
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        values = np.unique(arr)
        if set(values.tolist()) <= {0, 255}:
            raise SynthaugError(f"{path} looks like a 0/255 mask (values {_listing(str(v) for v in values.tolist())}); "
                                f"nnU-Net wants label maps with 0 = background and 1 = lesion. Convert every label, "
                                f"e.g. {ZERO_ONE_FIX}")
        raise SynthaugError(f"{path} has label values {_listing(str(v) for v in values.tolist())}; multi-label "
                            "datasets are not supported yet, only binary lesion masks (0 = background, 1 = lesion)")
