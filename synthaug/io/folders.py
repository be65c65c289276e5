"""A plain image folder + mask folder (+ an optional type table) -> an nnU-Net v2 raw folder.

How most lesion data sets ship (UDIAT, BrEaST, BUS-UCLM, QAMEBI, in-house
exports): images and masks matched by file name, either in two folders
(``img/a.png`` + ``masks/a.png`` or ``masks/a_mask.png``) or in one folder with a
mask suffix (``a.png`` + ``a_mask.png``; further masks ``a_mask_1.png`` join the
first as a union, as in BUSI). png, jpg, bmp and tif are read; images become
8-bit grey (16-bit and float images are stretched from their own min..max),
masks may be 1-bit, L, RGB(A) or palette with two values (0/255, 0/1, ...).

Everything that can be checked without reading pixels (names, pairs, the
CSV) is checked before anything is written; pixel problems (an unreadable
file, a mask with more than two values, image/mask sizes) stop the writer,
which then removes its temporary folder: a failed conversion writes nothing.
The cases are written by ``public_sets.write_raw_dataset``, the writer of the
BUSI converter, as ``NAME_0000`` ... in natural name order, their file names
kept in ``case_metadata.json`` (``source_name``).
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import SynthaugError
from .images import read_mask
from .public_sets import write_raw_dataset

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
TUMOUR_TYPES = ("benign", "malignant")  # what the generators condition on
UNKNOWN_TYPES = ("", "unknown", "none", "na", "n/a", "-")  # a CSV cell meaning "no type for this case"


def _listing(names, limit: int = 5) -> str:
    names = sorted(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _natural(name: str):
    """'a2' before 'a10', as a person numbers files."""
    return [int(t) if t.isdigit() else t.strip().lower() for t in re.split(r"(\d+)", name)]


def _image_files(folder: Path, what: str) -> dict[str, Path]:
    """Stem -> file of the readable image types in ``folder``; two files with one stem are an error."""
    if not folder.is_dir():
        raise SynthaugError(f"{what} folder {folder} does not exist")
    files: dict[str, list[Path]] = {}
    for p in folder.iterdir():
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS:
            files.setdefault(p.stem, []).append(p)
    dup = {s: fs for s, fs in files.items() if len(fs) > 1}
    if dup:
        s = sorted(dup, key=_natural)[0]
        raise SynthaugError(f"{what} folder {folder}: {len(dup)} name(s) occur with two extensions, e.g. "
                            f"{' and '.join(sorted(p.name for p in dup[s]))}: keep one file per case")
    return {s: fs[0] for s, fs in files.items()}


def match_pairs(images: str | Path, masks: str | Path, mask_suffix: str = "_mask") -> list[tuple[str, Path, list[Path]]]:
    """(name, image, [masks]) for every case, in natural name order; unmatched names are an error.

    A mask of image ``a`` is ``a`` (separate folder only), ``a{suffix}`` or ``a{suffix}_N``.
    """
    images, masks = Path(images), Path(masks)
    same = images.resolve() == masks.resolve()
    img_files = _image_files(images, "image")
    mask_files = img_files if same else _image_files(masks, "mask")
    suffix_re = re.compile(rf"^(.+){re.escape(mask_suffix)}(?:_\d+)?$") if mask_suffix else None

    def owner(stem: str) -> str | None:  # the image stem a mask file belongs to, by suffix
        m = suffix_re.match(stem) if suffix_re else None
        return m.group(1) if m else None

    if same:
        if not mask_suffix:
            raise SynthaugError("images and masks share one folder: give the mask suffix (--mask-suffix _mask)")
        mask_stems = {s for s in img_files if owner(s) is not None}
        img_files = {s: p for s, p in img_files.items() if s not in mask_stems}
        mask_files = {s: mask_files[s] for s in mask_stems}
    if not img_files:
        raise SynthaugError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {images}")
    if not mask_files:
        raise SynthaugError(f"no masks ({', '.join(IMAGE_EXTENSIONS)}) in {masks}")
    pairs: dict[str, list[Path]] = {s: [] for s in img_files}
    orphans = []
    for s, p in mask_files.items():
        o = s if (not same and s in pairs) else owner(s)
        if o in pairs:
            pairs[o].append(p)
        else:
            orphans.append(p.name)
    lonely = [img_files[s].name for s, ms in pairs.items() if not ms]
    if lonely or orphans:
        parts = []
        if lonely:
            parts.append(f"{len(lonely)} image(s) without a mask ({_listing(lonely)})")
        if orphans:
            parts.append(f"{len(orphans)} mask(s) without an image ({_listing(orphans)})")
        raise SynthaugError(f"names do not match: {'; '.join(parts)}. A mask of image a.png is named "
                            f"{'a.png or ' if not same else ''}a{mask_suffix}.png (set --mask-suffix)")
    return [(s, img_files[s], sorted(pairs[s], key=lambda p: _natural(p.stem)))
            for s in sorted(pairs, key=_natural)]


def read_types(csv_path: str | Path, names: list[str]) -> dict[str, str | None]:
    """Case name -> "benign" | "malignant" | None from a CSV of (case, type) rows; a header row is optional.

    The case is the image's file name with or without extension; types are
    case-insensitive, an empty cell or "unknown" means no type. Every case must
    have a row, and every row a case.
    """
    csv_path = Path(csv_path)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise SynthaugError(f"cannot read the labels CSV {csv_path}: {e}") from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = [r for r in csv.reader(text.splitlines(), dialect) if any(c.strip() for c in r)]
    known = set(names)
    types: dict[str, str | None] = {}
    unknown_cases, bad = [], []
    for k, row in enumerate(rows):
        if len(row) < 2:
            raise SynthaugError(f"{csv_path} line {k + 1}: expected two columns, case and tumour type")
        case, value = row[0].strip(), row[1].strip().lower()
        if k == 0 and case not in known and Path(case).stem not in known and value not in TUMOUR_TYPES + UNKNOWN_TYPES:
            continue  # a header row
        name = case if case in known else (Path(case).stem if Path(case).stem in known else None)
        if name is None:
            unknown_cases.append(case)
            continue
        if value not in TUMOUR_TYPES + UNKNOWN_TYPES:
            bad.append(f"{case}: {row[1].strip()!r}")
            continue
        label = value if value in TUMOUR_TYPES else None
        if name in types and types[name] != label:
            raise SynthaugError(f"{csv_path}: case {name} has two different types")
        types[name] = label
    if unknown_cases:
        raise SynthaugError(f"{csv_path} names {len(unknown_cases)} case(s) with no image: {_listing(unknown_cases)}")
    if bad:
        raise SynthaugError(f"{csv_path}: unsupported tumour type(s) {_listing(bad, 3)}; supported: "
                            f"{', '.join(TUMOUR_TYPES)}, or an empty cell / 'unknown' for no type")
    missing = sorted(set(names) - set(types), key=_natural)
    if missing:
        raise SynthaugError(f"{csv_path} has no row for {len(missing)} case(s): {_listing(missing)} "
                            "(add them, with an empty type if unknown)")
    return types


def _open(path: Path) -> Image.Image:
    try:
        im = Image.open(path)
        im.load()
        return im
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise SynthaugError(f"cannot read {path}: {e}") from None


def read_image(path: Path) -> np.ndarray:
    """8-bit grey HxW: colour to luma; 16-bit/float stretched from the image's own min..max."""
    im = _open(path)
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        return np.zeros(arr.shape, np.uint8) if hi <= lo else np.round((arr - lo) / (hi - lo) * 255).astype(np.uint8)
    return np.asarray(im if im.mode == "L" else im.convert("L"), dtype=np.uint8).copy()


def read_binary_mask(path: Path, threshold: float | None = None) -> np.ndarray:
    """Boolean lesion mask; without ``threshold`` the mask must hold at most two values (the higher is lesion)."""
    im = _open(path)
    if im.mode == "1":
        return np.asarray(im, dtype=bool).copy()
    if threshold is None and im.mode in ("L", "P", "RGB", "RGBA", "LA", "I", "I;16", "F"):
        arr = np.asarray(im.convert("RGBA") if im.mode == "P" else im)
        if arr.ndim == 3:  # colour masks: alpha marks opacity, not lesion
            arr = arr[..., :3].max(axis=2) if arr.shape[2] >= 3 else arr[..., 0]
        values = np.unique(arr)
        if len(values) > 2:
            shown = ", ".join(str(v) for v in values[:4]) + (", ..." if len(values) > 4 else "")
            raise SynthaugError(f"mask {path} has {len(values)} values ({shown}), not two: binarise the masks, "
                                f"e.g. pass --mask-threshold {int(values[len(values) // 2]) if len(values) else 127} "
                                "(lesion = value > threshold; JPEG masks need this)")
        return arr > values[0] if len(values) == 2 else arr > 0
    return read_mask(path, threshold=int(threshold if threshold is not None else 127))


def iter_folder(pairs, types: dict[str, str | None], threshold: float | None = None,
                name: str = "Case") -> Iterator[dict]:
    """Case dicts for ``write_raw_dataset``, read lazily (errors stop the writer, which then removes its work)."""
    for k, (stem, image_path, mask_paths) in enumerate(pairs):
        image = read_image(image_path)
        mask = np.zeros(image.shape, dtype=bool)
        for p in mask_paths:
            m = read_binary_mask(p, threshold)
            if m.shape != image.shape:
                raise SynthaugError(f"mask {p} is {m.shape[1]}x{m.shape[0]} but its image {image_path.name} is "
                                    f"{image.shape[1]}x{image.shape[0]}")
            mask |= m
        yield {"case_id": f"{name}_{k:04d}", "label": types.get(stem), "source_name": image_path.name,
               "split": "train", "image": image, "mask": mask}


def refuse_all_empty(masks: str | Path, mask_threshold: float | None):
    """A ``write_raw_dataset`` check: a folder whose masks are all empty holds no lesion to learn from
    (a wrong folder, or masks whose lesion value the reader could not tell apart): refuse it."""

    def check(metadata: dict) -> None:
        if all(m["box"] is None for m in metadata.values()):
            how = ("lower --mask-threshold" if mask_threshold is not None
                   else "check that lesion pixels are the brighter value, or pass --mask-threshold")
            raise SynthaugError(f"all {len(metadata)} masks in {masks} are empty (no lesion pixel): is it the "
                                f"lesion mask folder? ({how}); nothing was written")

    return check


def conversion_summary(raw: str | Path) -> list[str]:
    """What a conversion made, from the folder's case_metadata.json and dataset.json: case and type counts,
    the training / test-only split (public sets), empty masks (a warning when most are),
    and what resizing did to the image sizes."""
    from .nnunet_raw import METADATA_JSON
    from .images import read_json

    raw = Path(raw)
    cases = read_json(raw / METADATA_JSON, f"{raw} has no {METADATA_JSON}")["cases"]
    conversion = read_json(raw / "dataset.json", f"{raw} has no dataset.json").get("synthaug_conversion", {})
    n = len(cases)
    types = [c.get("label") for c in cases.values()]
    empty = sum(c.get("box") is None for c in cases.values())
    lines = [f"{n} cases: {types.count('benign')} benign, {types.count('malignant')} malignant, "
             f"{types.count(None)} without a type; {empty} with an empty mask (no lesion)"]
    tests = sum(c.get("split") == "test" for c in cases.values())
    if tests:  # the public sets' test cases: nnU-Net and synthaug never train on imagesTs
        lines.append(f"{n - tests} in imagesTr (training), {tests} in imagesTs (test only)")
    if empty * 2 > n:
        lines.append(f"warning: {empty} of {n} masks are empty: a generator learns lesions only from the "
                     f"{n - empty} others. Check the mask folder (or --mask-threshold) if this is not expected")
    sizes = sorted({tuple(c["original_size"]) for c in cases.values()}, key=lambda hw: hw[0] * hw[1])
    span = "x".join(map(str, sizes[0][::-1])) + (f" .. {'x'.join(map(str, sizes[-1][::-1]))}" if len(sizes) > 1 else "")
    size = conversion.get("size")
    if size is None:
        lines.append(f"sizes kept ({span}, width x height); pass --size N to resize")
    else:
        changed = [hw for hw in (tuple(c["original_size"]) for c in cases.values()) if hw[0] != hw[1]]
        if conversion.get("keep_aspect"):
            lines.append(f"resized {span} (width x height) to {size}x{size}: longer side scaled to {size}, "
                         f"{len(changed)} non-square case(s) padded with black (aspect ratio kept)")
        elif changed:
            worst = max(max(h, w) / min(h, w) for h, w in changed)
            lines.append(f"resized {span} (width x height) to {size}x{size}: {len(changed)} non-square case(s) "
                         f"stretched (aspect ratio changed, up to {worst:.2f}:1); --keep-aspect pads instead")
        else:
            lines.append(f"resized {span} to {size}x{size} (all square: aspect ratio kept)")
    return lines


def convert_folder(images: str | Path, masks: str | Path, dst_raw: str | Path, dataset_id: int,
                   name: str = "Custom", labels: str | Path | None = None, size: int | None = None,
                   mask_suffix: str = "_mask", mask_threshold: float | None = None,
                   channel_name: str = "ultrasound", keep_aspect: bool = False) -> Path:
    """Convert an image folder and a mask folder (or one folder with ``mask_suffix``) to
    ``dst_raw/DatasetNNN_name`` (all cases in imagesTr/labelsTr); returns the folder.

    ``labels`` is a CSV of case -> benign/malignant (empty for unknown); without it
    every case has no type, and ``synthaug fit`` trains single-class generators.
    ``keep_aspect`` (with ``size``) pads to a square instead of stretching. A folder whose
    masks are all empty is refused (nothing written); ``conversion_summary`` says what was made.
    """
    from .public_sets import _prepare_destination, raw_dataset_name

    pairs = match_pairs(images, masks, mask_suffix)
    names = [s for s, _, _ in pairs]
    types = read_types(labels, names) if labels else {}
    dst_raw = Path(dst_raw)
    created = [p for p in (dst_raw, *dst_raw.parents) if not p.exists()]
    folder = raw_dataset_name(dataset_id, name)
    try:
        _prepare_destination(dst_raw, folder)  # refuses a taken id or a non-empty target before any read
        n_typed = sum(t is not None for t in types.values())
        return write_raw_dataset(iter_folder(pairs, types, mask_threshold, name), dst_raw, dataset_id, name,
                                 source="folder", size=size, channel_name=channel_name, keep_aspect=keep_aspect,
                                 check=refuse_all_empty(masks, mask_threshold),
                                 description=f"{len(pairs)} image/mask pairs from {Path(images).name}/ and "
                                             f"{Path(masks).name}/, {n_typed} with a tumour type")
    except BaseException:
        for p in created:  # only the folders this call made, and only while empty
            try:
                p.rmdir()
            except OSError:
                break
        raise
