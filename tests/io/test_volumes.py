"""3D volume reading and lesion-slice extraction on small synthetic volumes (NIfTI, DICOM, nnU-Net 3D raw)."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from synthaug.errors import SynthaugError
from synthaug.io.volumes import extract_lesion_slices, read_volume, select_slices, volumes_to_raw, window_to_uint8

SHAPE = (10, 24, 20)  # (z, y, x)
LESION = [3, 4, 5, 6]  # slices with a real lesion
SLIVER = 7  # one lesion pixel only
FREE = [0, 1, 2, 8, 9]


def _volume(seed=0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    vol = rng.normal(100, 20, SHAPE).astype(np.int16)
    vol[0, 0, 0] = 3000  # an outlier the percentile window must ignore
    mask = np.zeros(SHAPE, np.uint8)
    mask[LESION[0]:LESION[-1] + 1, 8:14, 5:11] = 1
    mask[SLIVER, 12, 12] = 1
    vol[mask.astype(bool)] += 80
    return vol, mask


def _save_nifti(arr_zyx: np.ndarray, path: Path) -> Path:
    nib.save(nib.Nifti1Image(np.ascontiguousarray(arr_zyx.T), np.eye(4)), str(path))  # nibabel stores (x, y, z)
    return path


def _save_dicom_series(arr_zyx: np.ndarray, folder: Path) -> Path:
    import SimpleITK as sitk

    folder.mkdir()
    series_uid = "1.2.826.0.1.3680043.2.1125.1.42"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(arr_zyx.shape[0]):
        sl = sitk.GetImageFromArray(arr_zyx[z])
        for tag, value in [("0008|0060", "OT"), ("0020|000d", series_uid + ".0"), ("0020|000e", series_uid),
                           ("0020|0013", str(z + 1)), ("0020|0032", f"0\\0\\{z}"), ("0020|0037", "1\\0\\0\\0\\1\\0"),
                           ("0008|0018", f"{series_uid}.{z + 1}")]:
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice_{z:03d}.dcm"))
        writer.Execute(sl)
    return folder


@pytest.fixture
def nifti_pair(tmp_path):
    vol, mask = _volume()
    return _save_nifti(vol, tmp_path / "vol.nii.gz"), _save_nifti(mask, tmp_path / "vol_mask.nii.gz")


def test_nifti_reads_in_zyx_order(nifti_pair):
    vol, mask = _volume()
    np.testing.assert_array_equal(read_volume(nifti_pair[0]), vol)
    np.testing.assert_array_equal(read_volume(nifti_pair[1]), mask)


def test_lesion_slices_only_by_default(nifti_pair):
    slices = extract_lesion_slices(*nifti_pair)
    assert [s["slice_index"] for s in slices] == LESION + [SLIVER]
    _, mask = _volume()
    for s in slices:
        assert s["image"].dtype == np.uint8 and s["image"].shape == SHAPE[1:]
        assert s["mask"].dtype == bool
        np.testing.assert_array_equal(s["mask"], mask[s["slice_index"]].astype(bool))
        assert s["source"] == str(nifti_pair[0])


def test_min_lesion_pixels_drops_slivers_without_making_them_negatives(nifti_pair):
    slices = extract_lesion_slices(*nifti_pair, min_lesion_pixels=2, negative_fraction=1.0)
    assert [s["slice_index"] for s in slices] == sorted(LESION + FREE)


def test_negative_share_is_seeded(nifti_pair):
    picks = [[s["slice_index"] for s in extract_lesion_slices(*nifti_pair, negative_fraction=0.5, seed=seed)]
             for seed in (0, 0, 1, 2, 3)]
    assert picks[0] == picks[1]  # reproducible
    for p in picks:
        negatives = [i for i in p if i in FREE]
        assert len(negatives) == 3  # 0.5 * 5 lesion-free slices, rounded half up
        assert sorted(set(p) - set(negatives)) == LESION + [SLIVER]
    assert len({tuple(p) for p in picks}) > 1  # seeds matter


def test_window_ignores_outliers():
    vol, _ = _volume()
    out = window_to_uint8(vol)
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    assert np.mean(out == 255) < 0.02  # the 3000 outlier did not squash everything else to black
    assert window_to_uint8(np.full((2, 3, 3), 7)).max() == 0  # constant volume: no division by zero


def test_other_axes(nifti_pair):
    along_x = extract_lesion_slices(*nifti_pair, axis=2, min_lesion_pixels=2)
    assert [s["slice_index"] for s in along_x] == list(range(5, 11))
    assert along_x[0]["image"].shape == (SHAPE[0], SHAPE[1])
    with pytest.raises(SynthaugError, match="axis"):
        select_slices(np.zeros(SHAPE, bool), axis=3)


def test_dicom_series_with_nifti_mask(tmp_path):
    vol, mask = _volume()
    folder = _save_dicom_series(vol, tmp_path / "series")
    np.testing.assert_array_equal(read_volume(folder), vol)
    slices = extract_lesion_slices(folder, _save_nifti(mask, tmp_path / "m.nii.gz"), min_lesion_pixels=2)
    assert [s["slice_index"] for s in slices] == LESION


def test_shape_mismatch_and_bad_inputs(tmp_path, nifti_pair):
    other = _save_nifti(np.zeros((4, 4, 4), np.uint8), tmp_path / "small.nii.gz")
    with pytest.raises(SynthaugError, match="differ in shape"):
        extract_lesion_slices(nifti_pair[0], other)
    flat = _save_nifti(np.zeros((5, 5), np.uint8), tmp_path / "flat.nii.gz")
    with pytest.raises(SynthaugError, match="expected a 3D volume"):
        read_volume(flat)
    with pytest.raises(SynthaugError, match="not found"):
        read_volume(tmp_path / "missing.nii.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SynthaugError, match="no DICOM series"):
        read_volume(tmp_path / "empty")
    with pytest.raises(SynthaugError, match="negative_fraction"):
        extract_lesion_slices(*nifti_pair, negative_fraction=1.5)


def _raw_folder(folder: Path) -> dict:
    return {"meta": json.loads((folder / "case_metadata.json").read_text(encoding="utf-8")),
            "dataset": json.loads((folder / "dataset.json").read_text(encoding="utf-8"))}


def test_nnunet_3d_raw_to_2d_raw(tmp_path):
    src = tmp_path / "Dataset300_Vol3D"
    (src / "imagesTr").mkdir(parents=True)
    (src / "labelsTr").mkdir()
    for i in range(2):
        vol, mask = _volume(seed=i)
        _save_nifti(vol, src / "imagesTr" / f"vol{i}_0000.nii.gz")
        _save_nifti(mask, src / "labelsTr" / f"vol{i}.nii.gz")
    dataset_json = {"channel_names": {"0": "DBT"}, "labels": {"background": 0, "lesion": 1}, "numTraining": 2,
                    "file_ending": ".nii.gz"}
    (src / "dataset.json").write_text(json.dumps(dataset_json))
    out = volumes_to_raw(src, tmp_path / "raw2d", dataset_id=301, name="DBT", min_lesion_pixels=2)
    assert out.name == "Dataset301_DBT"
    info = _raw_folder(out)
    assert info["dataset"]["numTraining"] == 8 and info["dataset"]["channel_names"] == {"0": "DBT"}
    cases = info["meta"]["cases"]
    assert [c["source_name"] for c in cases.values()] == [f"vol{v}_0000.nii.gz#z={z}" for v in (0, 1) for z in LESION]
    assert all(c["label"] is None and c["split"] == "train" and c["original_size"] == [24, 20] for c in cases.values())
    with Image.open(out / "labelsTr" / "DBT_0000.png") as im:
        assert set(np.unique(np.asarray(im))) == {0, 1}


def test_volume_pairs_with_resize(tmp_path, nifti_pair):
    out = volumes_to_raw([nifti_pair], tmp_path / "raw", dataset_id=302, name="Vol", size=16, negative_fraction=1.0)
    cases = _raw_folder(out)["meta"]["cases"]
    assert len(cases) == SHAPE[0]
    with Image.open(out / "imagesTr" / "Vol_0000_0000.png") as im:
        assert im.size == (16, 16) and im.mode == "L"
    assert cases["Vol_0000"]["box"] is None  # slice 0 is lesion-free


def test_no_lesion_anywhere_is_refused(tmp_path):
    vol = _save_nifti(np.ones(SHAPE, np.int16), tmp_path / "v.nii.gz")
    empty = _save_nifti(np.zeros(SHAPE, np.uint8), tmp_path / "m.nii.gz")
    with pytest.raises(SynthaugError, match="no .* cases"):
        volumes_to_raw([(vol, empty)], tmp_path / "raw", dataset_id=303, name="Vol")
    assert not any((tmp_path / "raw").iterdir())
