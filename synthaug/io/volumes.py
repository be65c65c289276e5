"""3D volumes with lesion masks (DBT, CT, MRI) -> 2D lesion slices for the 2D generators.

The PIG generator and nnU-Net 2D train on (image, mask) slices. This module
reads a volume and its mask, keeps the slices that show lesion (plus, when
asked, a seeded share of lesion-free ones so a generator also sees normal
tissue), windows each volume to 8 bits and writes the slices as a 2D nnU-Net
raw folder through the same writer as the public-set converters.

Inputs: NIfTI files (nibabel), DICOM series (a folder of slices, SimpleITK),
any other file SimpleITK reads (.mha, .nrrd, ...), and nnU-Net v2 3D raw
folders (imagesTr/CASE_0000.nii.gz + labelsTr/CASE.nii.gz; channel 0 only).

Every volume is returned as a numpy array in (z, y, x) order -- SimpleITK's
order; nibabel's (x, y, z) arrays are transposed to match -- so an image and
its mask may come in different formats. ``axis=0`` slices along z, which for
a DICOM series is the acquisition slice order. Slices keep their voxel grid
(no resampling), so slicing along a non-default axis of an anisotropic
volume gives stretched images.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..errors import SynthaugError
from .public_sets import write_raw_dataset

NIFTI_SUFFIXES = (".nii", ".nii.gz")
WINDOW_PERCENTILES = (0.5, 99.5)
_AXIS_NAMES = "zyx"


# ============================================================================= reading
def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def _read_nifti(path: Path) -> np.ndarray:
    import nibabel as nib

    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj)  # applies scl_slope/inter only when set; keeps int dtypes
    return data.T  # (x, y, z[, ...]) -> ([..., ] z, y, x)


def _read_dicom_series(folder: Path) -> np.ndarray:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise SynthaugError(f"{folder} holds no DICOM series")
    if len(series) > 1:
        raise SynthaugError(f"{folder} holds {len(series)} DICOM series; put each series in its own folder")
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), series[0]))
    return sitk.GetArrayFromImage(reader.Execute())


def _read_sitk(path: Path) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def read_volume(path: str | Path) -> np.ndarray:
    """A 3D array in (z, y, x) order from a NIfTI file, a DICOM series folder or any SimpleITK file.

    Singleton extra dimensions (a 4D file with one time point) are dropped;
    anything that is not 3D then is refused.
    """
    path = Path(path)
    if not path.exists():
        raise SynthaugError(f"volume {path} not found")
    try:
        if path.is_dir():
            vol = _read_dicom_series(path)
        elif _is_nifti(path):
            vol = _read_nifti(path)
        else:
            vol = _read_sitk(path)
    except SynthaugError:
        raise
    except Exception as e:  # nibabel/ITK raise many types for unreadable files
        raise SynthaugError(f"cannot read volume {path}: {e}") from None
    vol = np.asarray(vol)
    if vol.ndim > 3:
        vol = vol.reshape([s for s in vol.shape if s != 1] or [1])
    if vol.ndim != 3:
        raise SynthaugError(f"{path} is {vol.ndim}D with shape {vol.shape}; expected a 3D volume")
    return vol


# ============================================================================= slicing
def window_to_uint8(volume: np.ndarray, percentiles: tuple[float, float] = WINDOW_PERCENTILES) -> np.ndarray:
    """Map the volume's [p0.5, p99.5] intensity range to 0..255 (clipped).

    One window per volume, not per slice, so the slices of a volume keep
    their relative brightness; the percentiles ignore the few extreme voxels
    (calcifications, markers, padding) that a min-max window would follow.
    """
    lo, hi = np.percentile(volume, percentiles)
    if hi <= lo:
        return np.zeros(volume.shape, dtype=np.uint8)
    scaled = (np.asarray(volume, dtype=np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def select_slices(mask: np.ndarray, axis: int = 0, negative_fraction: float = 0.0, min_lesion_pixels: int = 1,
                  seed=0) -> list[int]:
    """Sorted indices along ``axis`` of lesion slices plus a seeded share of lesion-free ones.

    A slice is a lesion slice when its mask has at least ``min_lesion_pixels``
    pixels, lesion-free when it has none (slices in between, with only a
    sliver of lesion, are neither: they would teach a generator a lesion
    mask without a visible lesion). ``negative_fraction`` (0..1) is the share
    of the lesion-free slices kept, rounded half up, drawn with ``seed``.
    """
    if axis not in (0, 1, 2):
        raise SynthaugError(f"axis {axis!r} must be 0, 1 or 2")
    if not 0.0 <= negative_fraction <= 1.0:
        raise SynthaugError(f"negative_fraction {negative_fraction!r} must be between 0 and 1")
    if min_lesion_pixels < 1:
        raise SynthaugError(f"min_lesion_pixels {min_lesion_pixels!r} must be at least 1")
    other = tuple(a for a in range(3) if a != axis)
    counts = np.count_nonzero(mask, axis=other)
    positives = np.flatnonzero(counts >= min_lesion_pixels)
    negatives = np.flatnonzero(counts == 0)
    n_neg = math.floor(negative_fraction * negatives.size + 0.5)
    chosen = np.random.default_rng(seed).choice(negatives, size=n_neg, replace=False) if n_neg else []
    return sorted(int(i) for i in np.concatenate([positives, chosen]))


def extract_lesion_slices(image_path: str | Path, mask_path: str | Path, axis: int = 0,
                          negative_fraction: float = 0.0, min_lesion_pixels: int = 1, seed=0) -> list[dict]:
    """2D slices of a volume: ``[{image uint8 HxW, mask bool HxW, slice_index, source}]``.

    Which slices: see ``select_slices``; intensities: ``window_to_uint8``
    over the whole volume. ``source`` is the image path as given.
    """
    volume, mask = read_volume(image_path), read_volume(mask_path) > 0
    if volume.shape != mask.shape:
        raise SynthaugError(f"image {image_path} {volume.shape} and mask {mask_path} {mask.shape} differ in shape")
    indices = select_slices(mask, axis, negative_fraction, min_lesion_pixels, seed)
    if not indices:
        return []
    volume = window_to_uint8(volume)
    return [{"image": np.ascontiguousarray(np.take(volume, i, axis=axis)),
             "mask": np.ascontiguousarray(np.take(mask, i, axis=axis)),
             "slice_index": i, "source": str(image_path)} for i in indices]


# ============================================================================= raw folder
def nnunet_3d_pairs(raw_dir: str | Path) -> list[tuple[Path, Path]]:
    """(channel-0 image, label) paths of an nnU-Net v2 raw folder's training cases, by nnU-Net's own listing."""
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    raw_dir = Path(raw_dir)
    if not (raw_dir / "dataset.json").is_file():
        raise SynthaugError(f"{raw_dir} is not an nnU-Net raw folder (no dataset.json)")
    dataset = get_filenames_of_train_images_and_targets(str(raw_dir), load_json(str(raw_dir / "dataset.json")))
    if not dataset:
        raise SynthaugError(f"{raw_dir} has no training cases in imagesTr")
    return [(Path(v["images"][0]), Path(v["label"])) for _, v in sorted(dataset.items())]


def _volume_pairs(source) -> list[tuple[Path, Path]]:
    if isinstance(source, (str, Path)):
        return nnunet_3d_pairs(source)
    pairs = [(Path(i), Path(m)) for i, m in source]
    if not pairs:
        raise SynthaugError("no (image, mask) volume pairs given")
    return pairs


def _slice_cases(pairs: Sequence[tuple[Path, Path]], name: str, axis: int, negative_fraction: float,
                 min_lesion_pixels: int, seed: int) -> Iterator[dict]:
    """Writer case dicts, one volume in memory at a time; each volume gets its own seed stream."""
    k = 0
    for v, (image_path, mask_path) in enumerate(pairs):
        for s in extract_lesion_slices(image_path, mask_path, axis, negative_fraction, min_lesion_pixels,
                                       seed=[seed, v]):
            yield {"case_id": f"{name}_{k:04d}", "label": None, "split": "train",
                   "source_name": f"{image_path.name}#{_AXIS_NAMES[axis]}={s['slice_index']}",
                   "image": s["image"], "mask": s["mask"]}
            k += 1


def volumes_to_raw(source: str | Path | Iterable[tuple[str | Path, str | Path]], dst_raw: str | Path,
                   dataset_id: int, name: str = "DBT", size: int | None = None, *, axis: int = 0,
                   negative_fraction: float = 0.0, min_lesion_pixels: int = 1, seed: int = 0,
                   channel_name: str = "DBT") -> Path:
    """Write the lesion slices of 3D volumes as the 2D raw folder ``dst_raw/DatasetNNN_name``.

    ``source`` is an nnU-Net v2 3D raw folder or an iterable of (image, mask)
    paths (files or DICOM folders). Slices become training cases
    ``name_0000`` ... in volume then slice order, with case_metadata
    ``source_name`` ``"<image file>#z=<index>"`` and label null.
    """
    pairs = _volume_pairs(source)
    cases = _slice_cases(pairs, name, axis, negative_fraction, min_lesion_pixels, seed)
    return write_raw_dataset(cases, dst_raw, dataset_id, name, source=name, size=size, channel_name=channel_name,
                             description=f"2D lesion slices (axis {axis}) of {len(pairs)} volume(s)")
