"""2D image and mask IO shared by converters, the expander and the datasets.

Masks in the wild come as 1-bit, L, RGB or RGBA PNGs with 0/255 (or near-binary)
values; ``read_mask`` folds them all to a boolean array. Every write goes to a
temporary file in the same folder and is renamed into place, so a killed
process never leaves a half-written case behind; a rewritten file keeps its
mode and a new one gets the umask default, as a plain ``open(path, "w")`` would.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def read_gray(path: str | Path) -> np.ndarray:
    """8-bit grayscale HxW array (RGB/RGBA converted to luma)."""
    with Image.open(path) as im:
        if im.mode not in ("L",):
            im = im.convert("L")
        return np.asarray(im, dtype=np.uint8).copy()


def read_mask(path: str | Path, threshold: int = 127) -> np.ndarray:
    """Boolean HxW lesion mask from any PNG mode: foreground is any channel > threshold."""
    with Image.open(path) as im:
        if im.mode == "1":
            return np.asarray(im, dtype=bool).copy()
        if im.mode == "P":
            im = im.convert("RGBA")
        arr = np.asarray(im)
    if arr.ndim == 3:
        if arr.shape[2] in (2, 4):  # drop alpha: it marks opacity, not lesion
            arr = arr[..., :-1]
        arr = arr.max(axis=2)
    return arr > threshold


def mask_box(mask: np.ndarray) -> list[float] | None:
    """Lesion bounding box ``[x0, y0, x1, y1]`` normalised to [0, 1] (x1, y1 exclusive); None when empty."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    h, w = mask.shape
    return [round(xs.min() / w, 6), round(ys.min() / h, 6), round((xs.max() + 1) / w, 6), round((ys.max() + 1) / h, 6)]


def resize_image(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an 8-bit image to (height, width) with bicubic interpolation."""
    h, w = size
    if img.shape[:2] == (h, w):
        return img
    return np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC), dtype=np.uint8)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a binary mask to (height, width) with nearest neighbour; keeps it binary."""
    h, w = size
    if mask.shape[:2] == (h, w):
        return mask.astype(bool)
    im = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(im.resize((w, h), Image.NEAREST)) > 127


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask sets it, racing other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _target_mode(path: Path) -> int:
    """Mode the written file must end with: the existing file's on a rewrite, else 0666 minus the umask.

    mkstemp creates its file 0600; renamed into place as is, a rewritten
    dataset.json of a shared dataset would lose its group/other read access.
    """
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _target_mode(path))
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_png(path: str | Path, arr: np.ndarray) -> None:
    """Atomically write a uint8 HxW array as an 8-bit grayscale PNG."""
    arr = np.asarray(arr)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype != np.uint8:
        raise ValueError(f"write_png expects uint8 or bool, got {arr.dtype}")
    _atomic_write(Path(path), lambda f: Image.fromarray(arr, mode="L").save(f, format="PNG"))


def write_bytes(path: str | Path, data: bytes) -> None:
    """Atomically write ``data`` (mode kept on rewrite, umask default when new)."""
    _atomic_write(Path(path), lambda f: f.write(data))


def write_json(path: str | Path, obj, indent: int = 2) -> None:
    """Atomically write JSON (sorted keys off: dataset.json key order is kept)."""
    write_bytes(path, (json.dumps(obj, indent=indent) + "\n").encode())


def read_json(path: str | Path, missing: str):
    """Parse a JSON file, or raise SynthaugError: ``missing`` when it is absent, the parse error when malformed."""
    from ..errors import SynthaugError

    path = Path(path)
    if not path.is_file():
        raise SynthaugError(missing)
    try:
        return json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SynthaugError(f"{path} is not valid JSON: {e}") from None


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
