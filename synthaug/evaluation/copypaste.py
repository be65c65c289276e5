"""Copy-paste: the classical paired augmentation a user would try before a generator.

A real training lesion (image patch + mask) is pasted into another real
training image with a feathered alpha blend:

- **Where**: at the donor lesion's own place in the common 128 px frame (BUSI
  images are all scans of the same kind, so its depth below the skin is
  plausible), shifted by up to ``max_shift`` of the side at random, kept inside
  the frame, its feathered margin never touching the target's own lesion
  (dilated by the feather width). Positions are drawn up to ``tries`` times,
  then another (target, donor) couple is drawn.
- **Blend**: alpha is 1 on the donor lesion and falls linearly to 0 over
  ``feather`` pixels outside it (Euclidean distance to the lesion), so the
  lesion keeps its own texture, its margin fades into the target's tissue, and
  every pixel farther than ``feather`` from the pasted lesion is the target's.
  (A feathered blend, not Poisson blending or CarveMix's distance-map carving.)
- **Mask**: the union of the target's mask and the pasted lesion.

Composites are made once per run seed (``copy_paste_records``), ``round(r x
real)`` distinct ones for ``copy-paste r%``, like the fixed synthetic subset of
``bus r%``. They carry no tumour type (the image holds two lesions), so the
classification benchmark does not use them.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..data.datasets import Record


def feather_alpha(lesion: np.ndarray, feather: float) -> np.ndarray:
    """1 on ``lesion``, linearly down to 0 at ``feather`` pixels from it, 0 beyond."""
    if feather <= 0:
        return lesion.astype(np.float32)
    d = ndimage.distance_transform_edt(~lesion)
    return np.clip(1.0 - d / feather, 0.0, 1.0).astype(np.float32)


def shift(a: np.ndarray, dy: int, dx: int, fill=0) -> np.ndarray:
    """``a`` moved by (dy, dx), what comes in from outside set to ``fill``."""
    out = np.full_like(a, fill)
    h, w = a.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = a[ys, xs]
    return out


def paste(target_image: np.ndarray, target_mask: np.ndarray, donor_image: np.ndarray, donor_mask: np.ndarray,
          offset: tuple[int, int] = (0, 0), feather: float = 6.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, mask, alpha): the donor lesion moved by ``offset`` and blended into the target."""
    dy, dx = offset
    lesion = shift(donor_mask.astype(bool), dy, dx, False)
    alpha = feather_alpha(lesion, feather) * shift(np.ones(lesion.shape, np.float32), dy, dx, 0.0)  # 0 off the donor
    moved = shift(donor_image, dy, dx, 0).astype(np.float32)
    image = alpha * moved + (1.0 - alpha) * target_image.astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), target_mask.astype(bool) | lesion, alpha


def choose_offset(rng: np.random.Generator, target_mask: np.ndarray, donor_mask: np.ndarray, feather: float = 6.0,
                  max_shift: float = 0.15, tries: int = 20) -> tuple[int, int] | None:
    """A shift of the donor lesion that keeps it inside the frame and its feather off the target lesion."""
    ys, xs = np.nonzero(donor_mask)
    if ys.size == 0:
        return None
    h, w = donor_mask.shape
    m = int(np.ceil(feather))
    lo_y, hi_y = -ys.min(), h - 1 - ys.max()  # allowed shifts keep the whole lesion in the frame
    lo_x, hi_x = -xs.min(), w - 1 - xs.max()
    lo_y, hi_y = max(lo_y, -int(max_shift * h)), min(hi_y, int(max_shift * h))
    lo_x, hi_x = max(lo_x, -int(max_shift * w)), min(hi_x, int(max_shift * w))
    if lo_y > hi_y or lo_x > hi_x:
        return None
    keep_off = ndimage.binary_dilation(target_mask.astype(bool), iterations=m) if m else target_mask.astype(bool)
    for _ in range(tries):
        dy, dx = int(rng.integers(lo_y, hi_y + 1)), int(rng.integers(lo_x, hi_x + 1))
        if not keep_off[ys + dy, xs + dx].any():
            return dy, dx
    return None


def copy_paste_records(records: list[Record], n: int, seed: int, feather: float = 6.0,
                       max_shift: float = 0.15) -> list[Record]:
    """``n`` composites of the real ``records`` (all one size), drawn with ``seed``."""
    rng = np.random.default_rng([seed, 0xC0FFEE])
    out, attempts = [], 0
    while len(out) < n:
        attempts += 1
        if attempts > 50 * max(n, 1):
            raise RuntimeError(f"copy-paste found a place for only {len(out)} of {n} lesions")
        t, d = rng.choice(len(records), size=2, replace=False)
        target, donor = records[t], records[d]
        if target.image.shape != donor.image.shape:
            raise ValueError("copy-paste needs cases of one size (the benchmark resizes them all)")
        offset = choose_offset(rng, target.mask, donor.mask, feather, max_shift)
        if offset is None:
            continue
        image, mask, _ = paste(target.image, target.mask, donor.image, donor.mask, offset, feather)
        out.append(Record(image, mask, None, f"copypaste_{target.case_id}+{donor.case_id}", False))
    return out
