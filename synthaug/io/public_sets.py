"""Readers for the public breast-ultrasound sets and the one writer of nnU-Net v2 raw folders.

Two layers, so that code which only needs the pairs (datasets, generator
training) never has to convert first:

* readers -- ``iter_busi`` and ``iter_stu`` yield case dicts
  ``{case_id, label, source_name, split, image (uint8 HxW), mask (bool HxW)}``
  straight from the release folders;
* writer -- ``write_raw_dataset`` turns any iterable of such dicts into a 2D
  nnU-Net v2 raw folder (PNG, labels {0, 1}) plus ``case_metadata.json``.
  ``convert_busi``, ``convert_stu`` and ``synthaug.io.volumes.volumes_to_raw``
  all go through it, so every raw folder synthaug makes has the same layout.

The writer fills a hidden sibling folder and renames it into place only
after the last file is written: a failure (or Ctrl-C) leaves no half-written
dataset that nnU-Net would later pick up. A killed process can leave a
hidden ``.DatasetNNN_Name.*.partial`` folder behind; nnU-Net ignores it.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image

from ..errors import SynthaugError
from .images import mask_box, read_gray, read_mask, resize_image, resize_mask, write_json

log = logging.getLogger(__name__)

CASE_METADATA = "case_metadata.json"
FILE_ENDING = ".png"
LABELS = {"background": 0, "lesion": 1}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_SPLIT_DIRS = {"train": ("imagesTr", "labelsTr"), "test": ("imagesTs", "labelsTs")}

BUSI_FOLDER = "Dataset_BUSI_with_GT"
BUSI_CLASSES = ("benign", "malignant")  # the "normal" class has no lesion and is not used
BUSI_REFERENCE = ("Al-Dhabyani W, Gomaa M, Khaled H, Fahmy A. Dataset of breast ultrasound images. "
                  "Data in Brief 28:104863, 2020")
STU_REFERENCE = ("Zhuang Z et al. An RDAU-NET model for lesion segmentation in breast ultrasound images. "
                 "PLoS ONE 14(8):e0221535, 2019")
_BUSI_STEM = re.compile(r"^(benign|malignant) \((\d+)\)$")
_STU_IMAGE = re.compile(r"^Test_Image_(\d+)\.png$")


# ============================================================================= writer
def raw_dataset_name(dataset_id: int, name: str) -> str:
    """``DatasetNNN_Name`` as nnU-Net expects it; refuses ids nnU-Net cannot address."""
    if isinstance(dataset_id, bool) or not isinstance(dataset_id, (int, np.integer)) or not 1 <= dataset_id <= 999:
        raise SynthaugError(f"dataset id {dataset_id!r} must be an integer from 1 to 999 (nnU-Net's 3-digit ids)")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise SynthaugError(f"dataset name {name!r} must be letters, digits, '_' or '-' (it becomes a folder name)")
    return f"Dataset{int(dataset_id):03d}_{name}"


def _check_size(size) -> int | None:
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise SynthaugError(f"size {size!r} must be a positive integer (pixels per side) or None")
    return int(size)


def _prepare_destination(dst_raw: str | Path, folder_name: str) -> Path:
    """The final dataset folder path, after refusing every state we must not write into."""
    dst_raw = Path(dst_raw)
    try:
        dst_raw.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise SynthaugError(f"destination {dst_raw} is not a folder") from None
    except OSError as e:
        raise SynthaugError(f"cannot create destination {dst_raw}: {e.strerror or e}") from None
    if not os.access(dst_raw, os.W_OK | os.X_OK):
        raise SynthaugError(f"destination {dst_raw} is not writable")
    final = dst_raw / folder_name
    if final.exists() and (not final.is_dir() or any(final.iterdir())):
        raise SynthaugError(f"{final} already exists and is not empty; refusing to overwrite it "
                            "(choose another --dataset-id/--name or remove the folder yourself)")
    # nnU-Net resolves a dataset by its id alone and fails when two folders share one.
    prefix = folder_name[: len("Dataset000_")]
    clash = sorted(p.name for p in dst_raw.glob(f"{prefix}*") if p.name != folder_name)
    if clash:
        raise SynthaugError(f"{dst_raw} already holds {clash[0]} with the same dataset id; "
                            "nnU-Net needs ids to be unique, choose another --dataset-id")
    return final


def _save_png(path: Path, arr: np.ndarray) -> None:
    """Fast plain PNG write, for files inside the temporary dataset folder only.

    ``images.write_png`` makes every file atomic and fsync'ed; here the rename
    of the whole folder already gives all-or-nothing, and per-file fsync plus
    PIL's default zlib level 6 made BUSI conversion 2-4x slower. Level 1
    encodes ~6x faster for ~10% larger files.
    """
    Image.fromarray(arr, mode="L").save(path, format="PNG", compress_level=1)


def fit_square(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Scale the longer side to ``size`` (aspect ratio kept) and pad the shorter one with black, centred.
    Returns the square image, mask and the padding [top, bottom, left, right] in pixels."""
    h, w = image.shape
    scale = size / max(h, w)
    nh, nw = max(1, min(size, round(h * scale))), max(1, min(size, round(w * scale)))
    image, mask = resize_image(image, (nh, nw)), resize_mask(mask, (nh, nw))
    top, left = (size - nh) // 2, (size - nw) // 2
    pad = [top, size - nh - top, left, size - nw - left]
    return np.pad(image, (pad[:2], pad[2:])), np.pad(mask, (pad[:2], pad[2:])), pad


def _write_case(root: Path, case: dict, size: int | None, keep_aspect: bool = False) -> dict:
    """Write one case's image and label; return its case_metadata entry (with ``pad`` when ``keep_aspect``)."""
    case_id = case.get("case_id")
    if not isinstance(case_id, str) or not _NAME_RE.match(case_id):
        raise SynthaugError(f"case id {case_id!r} must be letters, digits, '_' or '-'")
    split = case.get("split", "train")
    if split not in _SPLIT_DIRS:
        raise SynthaugError(f"case {case_id}: split {split!r} must be 'train' or 'test'")
    image, mask = np.asarray(case["image"]), np.asarray(case["mask"])
    if image.ndim != 2 or image.dtype != np.uint8:
        raise SynthaugError(f"case {case_id}: image must be uint8 HxW, got {image.dtype} {image.shape}")
    if mask.shape != image.shape:
        raise SynthaugError(f"case {case_id}: mask {mask.shape} and image {image.shape} differ in size")
    original_size = list(image.shape)
    mask = mask.astype(bool)
    pad = None
    if size is not None and keep_aspect:
        image, mask, pad = fit_square(image, mask, size)
    elif size is not None:
        image, mask = resize_image(image, (size, size)), resize_mask(mask, (size, size))
    images_dir, labels_dir = (root / d for d in _SPLIT_DIRS[split])
    _save_png(images_dir / f"{case_id}_0000{FILE_ENDING}", image)
    _save_png(labels_dir / f"{case_id}{FILE_ENDING}", mask.astype(np.uint8))
    return {"label": case.get("label"), "source_name": str(case.get("source_name", case_id)), "split": split,
            "original_size": original_size, "box": mask_box(mask), **({"pad": pad} if pad is not None else {})}


def write_raw_dataset(cases: Iterable[dict], dst_raw: str | Path, dataset_id: int, name: str, *, source: str,
                      size: int | None = None, channel_name: str = "ultrasound", reference: str | None = None,
                      description: str | None = None, skipped: dict[str, int] | None = None,
                      keep_aspect: bool = False, check=None) -> Path:
    """Write ``cases`` as the 2D nnU-Net v2 raw folder ``dst_raw/DatasetNNN_name`` and return its path.

    Each case is a dict ``{case_id, image uint8 HxW, mask bool HxW, label, source_name, split}``
    (split "train" -> imagesTr/labelsTr, "test" -> imagesTs/labelsTs; all four
    folders always exist). ``size`` resizes every case to size x size (image
    bicubic, mask nearest). ``dataset.json`` comes from nnU-Net's own
    ``generate_dataset_json``, with a ``synthaug_conversion`` entry recording
    the source, the size, the test-case count and ``skipped`` (reason ->
    count), so a folder tells later readers what was left out. ``case_metadata.json``
    maps case id to label, source name, split, original [h, w] and the box
    of the written mask. ``keep_aspect`` scales the longer side to ``size`` and pads the other
    (``fit_square``; the padding is in the case's metadata). ``check(metadata)``, if given, sees
    every written case's metadata before the folder is put in place: a SynthaugError it raises
    leaves nothing behind.
    """
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    folder_name = raw_dataset_name(dataset_id, name)
    size = _check_size(size)
    final = _prepare_destination(dst_raw, folder_name)
    tmp = final.parent / f".{folder_name}.{uuid.uuid4().hex[:8]}.partial"
    try:
        tmp.mkdir()
    except OSError as e:
        raise SynthaugError(f"destination {final.parent} is not writable: {e.strerror or e}") from None
    try:
        for dirs in _SPLIT_DIRS.values():
            for d in dirs:
                (tmp / d).mkdir()
        metadata: dict[str, dict] = {}
        for case in cases:
            if case.get("case_id") in metadata:
                raise SynthaugError(f"case id {case['case_id']} occurs twice")
            metadata[case["case_id"]] = _write_case(tmp, case, size, keep_aspect)
        if not metadata:
            raise SynthaugError(f"no {source} cases to write")
        if check is not None:
            check(metadata)
        num_train = sum(m["split"] == "train" for m in metadata.values())
        conversion = {"source": source, "size": size, **({"keep_aspect": True} if keep_aspect else {}),
                      "numTest": len(metadata) - num_train,
                      "skipped": dict(skipped or {})}
        generate_dataset_json(str(tmp), {0: channel_name}, dict(LABELS), num_train, FILE_ENDING,
                              dataset_name=folder_name, reference=reference, description=description,
                              license=f"see the {source} source publication", converted_by="synthaug",
                              synthaug_conversion=conversion)
        write_json(tmp / CASE_METADATA, {"source": source, "cases": metadata})
        if final.is_dir():
            final.rmdir()  # empty (checked above); fails loudly if someone filled it meanwhile
        os.rename(tmp, final)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SynthaugError(f"writing {final} failed: {e}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


# ============================================================================= shared reading
def _load_pair(image_path: Path, mask_paths: Iterable[Path], fit_mask: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """8-bit image and the union of its masks; ``fit_mask`` resizes masks to the image (nearest)."""
    image = read_gray(image_path)
    mask = np.zeros(image.shape, dtype=bool)
    for p in mask_paths:
        m = read_mask(p)
        if m.shape != image.shape:
            if not fit_mask:
                raise SynthaugError(f"mask {p} is {m.shape[1]}x{m.shape[0]} but its image is "
                                    f"{image.shape[1]}x{image.shape[0]}")
            m = resize_mask(m, image.shape)
        mask |= m
    return image, mask


# ============================================================================= BUSI
@dataclass(frozen=True)
class _BusiEntry:
    name: str  # "class/stem", the split file's key
    split: str | None  # None: present in the folder but absent from the split
    image: Path | None  # None: listed in the split but withheld from the folder
    masks: tuple[Path, ...]
    case_id: str = ""

    @property
    def label(self) -> str:
        return self.name.split("/", 1)[0]


def _busi_folder(src: Path) -> Path:
    """The folder holding benign/ and malignant/: SRC/Dataset_BUSI_with_GT, or SRC itself."""
    for folder in (src / BUSI_FOLDER, src):
        if all((folder / c).is_dir() for c in BUSI_CLASSES):
            return folder
    raise SynthaugError(f"{src} does not look like BUSI: expected {BUSI_FOLDER}/benign and "
                        f"{BUSI_FOLDER}/malignant under it")


def _read_busi_split(path: Path) -> dict[str, str]:
    """``class/stem`` -> "train" | "test" from a split JSON with "train" and "test" lists."""
    if not path.is_file():
        raise SynthaugError(f"split file {path} not found (BUSI needs the benchmark split.json; pass --split)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        lists = {s: list(data[s]) for s in ("train", "test")}
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise SynthaugError(f"{path} is not a split file with 'train' and 'test' name lists ({e})") from None
    split: dict[str, str] = {}
    for s, names in lists.items():
        for n in names:
            cls, _, stem = str(n).partition("/")
            m = _BUSI_STEM.match(stem)
            if m is None or m.group(1) != cls:
                raise SynthaugError(f"{path}: {n!r} is not a BUSI name like 'benign/benign (12)'")
            if split.setdefault(n, s) != s:
                raise SynthaugError(f"{path}: {n} is in both train and test")
    return split


def _busi_sort_key(name: str) -> tuple[int, int]:
    cls, _, stem = name.partition("/")
    return BUSI_CLASSES.index(cls), int(_BUSI_STEM.match(stem).group(2))


def _busi_index(src: str | Path, split_file: str | Path | None = None) -> list[_BusiEntry]:
    """Every BUSI name of the split or the folder, sorted by class then file number.

    Case ids number this union, so a case keeps its id whether or not the
    withheld test images are present (ids of the 518 train cases have gaps).
    """
    src = Path(src)
    folder = _busi_folder(src)
    split = _read_busi_split(Path(split_file) if split_file else folder.parent / "split.json")
    files: dict[str, list[str]] = {}
    for cls in BUSI_CLASSES:
        for p in (folder / cls).iterdir():
            if p.suffix.lower() == ".png":
                stem = p.stem.split("_mask", 1)[0]
                if _BUSI_STEM.match(stem):
                    files.setdefault(f"{cls}/{stem}", []).append(p.name)
    entries = []
    for k, name in enumerate(sorted(set(split) | set(files), key=_busi_sort_key)):
        cls, stem = name.split("/")
        present = files.get(name, [])
        image = folder / cls / f"{stem}.png" if f"{stem}.png" in present else None
        mask_re = re.compile(re.escape(stem) + r"_mask(_\d+)?\.png")
        masks = tuple(folder / cls / f for f in sorted(present) if mask_re.fullmatch(f))
        if image is not None and not masks:
            raise SynthaugError(f"{image} has no mask ({stem}_mask.png)")
        entries.append(_BusiEntry(name, split.get(name), image, masks, f"BUSI_{k:04d}"))
    return entries


def busi_case_splits(src: str | Path, split_file: str | Path | None = None) -> dict[str, str | None]:
    """Case id -> "train" | "test" | None (not in the split), withheld images included, so a checkpoint's
    recorded training case ids can be checked against the split."""
    return {e.case_id: e.split for e in _busi_index(src, split_file)}


def _busi_skipped(entries: Iterable[_BusiEntry]) -> dict[str, int]:
    withheld = sum(e.image is None for e in entries)
    unsplit = sum(e.image is not None and e.split is None for e in entries)
    return {k: v for k, v in (("withheld (listed in the split, image not present)", withheld),
                              ("not in the split", unsplit)) if v}


def iter_busi(src: str | Path, split: str = "train", split_file: str | Path | None = None) -> Iterator[dict]:
    """BUSI benign+malignant cases of ``split`` ("train", "test" or "all") in case-id order.

    Yields ``{case_id, label, source_name, split, image uint8 HxW, mask bool HxW}``,
    the mask being the union of ``_mask``, ``_mask_1`` and ``_mask_2``. Names the
    split lists whose image is withheld are skipped with one warning, as are
    images the split does not list. ``split_file`` defaults to SRC/split.json.
    """
    if split not in ("train", "test", "all"):
        raise SynthaugError(f"split {split!r} must be 'train', 'test' or 'all'")
    entries = [e for e in _busi_index(src, split_file) if split == "all" or e.split == split or e.split is None]
    for reason, count in _busi_skipped(entries).items():
        log.warning("BUSI: skipped %d case(s) of split %r: %s", count, split, reason)
    for e in entries:
        if e.image is not None and e.split is not None:
            image, mask = _load_pair(e.image, e.masks)
            yield {"case_id": e.case_id, "label": e.label, "source_name": e.name, "split": e.split,
                   "image": image, "mask": mask}


def convert_busi(src: str | Path, dst_raw: str | Path, dataset_id: int, name: str = "BUSI",
                 size: int | None = None, split_file: str | Path | None = None) -> Path:
    """Convert BUSI (benign + malignant) to ``dst_raw/DatasetNNN_name`` and return the folder.

    Split train cases go to imagesTr/labelsTr, split test cases that are
    present to imagesTs/labelsTs; withheld ones are skipped with a warning
    and counted in dataset.json's ``synthaug_conversion.skipped``.
    """
    skipped = _busi_skipped(_busi_index(src, split_file))
    return write_raw_dataset(iter_busi(src, "all", split_file), dst_raw, dataset_id, name, source="BUSI", size=size,
                             reference=BUSI_REFERENCE, skipped=skipped,
                             description="BUSI benign+malignant breast ultrasound, lesion masks (union of all masks)")


# ============================================================================= STU
def _stu_folder(src: Path) -> Path:
    """The folder holding Test_Image_N.png: SRC itself or SRC/Hospital."""
    for folder in (src, src / "Hospital"):
        if folder.is_dir() and any(_STU_IMAGE.match(p.name) for p in folder.iterdir()):
            return folder
    raise SynthaugError(f"{src} does not look like STU: expected Test_Image_N.png and mask_N.png in it or in "
                        f"{src / 'Hospital'}")


def iter_stu(src: str | Path) -> Iterator[dict]:
    """STU-Hospital cases ``STU_000N`` by image number N, as test cases with label None.

    The masks are larger than their images: each is resized to its image
    with nearest neighbour and thresholded at >127 (``read_mask``).
    """
    folder = _stu_folder(Path(src))
    numbers = sorted(int(m.group(1)) for p in folder.iterdir() if (m := _STU_IMAGE.match(p.name)))
    for n in numbers:
        mask_path = folder / f"mask_{n}.png"
        if not mask_path.is_file():
            raise SynthaugError(f"{folder / f'Test_Image_{n}.png'} has no mask {mask_path.name}")
        image, mask = _load_pair(folder / f"Test_Image_{n}.png", [mask_path], fit_mask=True)
        yield {"case_id": f"STU_{n:04d}", "label": None, "source_name": f"{folder.name}/Test_Image_{n}",
               "split": "test", "image": image, "mask": mask}


def convert_stu(src: str | Path, dst_raw: str | Path, dataset_id: int, name: str = "STU",
                size: int | None = None) -> Path:
    """Convert STU-Hospital to a test-only raw folder (imagesTs/labelsTs, numTraining 0)."""
    return write_raw_dataset(iter_stu(src), dst_raw, dataset_id, name, source="STU", size=size,
                             reference=STU_REFERENCE, description="STU-Hospital external breast ultrasound test set")
