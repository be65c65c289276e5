"""BUSI / STU conversion to nnU-Net v2 raw folders, on the real data.

The two BUSI conversions (128 px and native size) are session fixtures so
the ~518-case conversion runs once per size; their durations are printed
(``pytest -s``) for the benchmark notes.
"""
from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from synthaug.cli import main
from synthaug.errors import SynthaugError
from synthaug.io.images import read_mask
from synthaug.io.public_sets import CASE_METADATA, convert_busi, convert_stu, iter_busi, iter_stu

pytestmark = pytest.mark.realdata

N_TRAIN, N_TEST = 518, 129


def _timed_convert(tmp_path_factory, busi_root, dataset_id, size):
    dst = tmp_path_factory.mktemp(f"raw{size}")
    t0 = time.perf_counter()
    out = convert_busi(busi_root, dst, dataset_id=dataset_id, size=size)
    print(f"\nconvert_busi(size={size}): {time.perf_counter() - t0:.1f} s")
    return out


@pytest.fixture(scope="session")
def busi128(tmp_path_factory, busi_root) -> Path:
    return _timed_convert(tmp_path_factory, busi_root, 501, 128)


@pytest.fixture(scope="session")
def busi_native(tmp_path_factory, busi_root) -> Path:
    return _timed_convert(tmp_path_factory, busi_root, 502, None)


def _metadata(folder: Path) -> dict:
    return json.loads((folder / CASE_METADATA).read_text(encoding="utf-8"))


def _label_name(image: Path) -> str:
    return image.name.removesuffix("_0000.png") + ".png"


def _png_values(path: Path) -> tuple[str, np.ndarray]:
    with Image.open(path) as im:
        return im.mode, np.asarray(im)


# ----------------------------------------------------------------------------- BUSI
def test_busi_layout_and_dataset_json(busi128):
    assert busi128.name == "Dataset501_BUSI"
    images = sorted(p.name for p in (busi128 / "imagesTr").iterdir())
    labels = sorted(p.name for p in (busi128 / "labelsTr").iterdir())
    assert len(images) == len(labels) == N_TRAIN
    assert [i.replace("_0000.png", ".png") for i in images] == labels
    assert all(re.fullmatch(r"BUSI_\d{4}_0000\.png", i) for i in images)
    assert not any((busi128 / "imagesTs").iterdir())  # every split test image is withheld here
    dj = json.loads((busi128 / "dataset.json").read_text(encoding="utf-8"))
    assert dj["numTraining"] == N_TRAIN
    assert dj["channel_names"] == {"0": "ultrasound"} and dj["labels"] == {"background": 0, "lesion": 1}
    assert dj["file_ending"] == ".png"
    assert dj["synthaug_conversion"]["skipped"] == {"withheld (listed in the split, image not present)": N_TEST}


def test_busi_images_gray_and_labels_binary(busi128):
    lesion_cases = 0
    for img in (busi128 / "imagesTr").iterdir():
        mode, arr = _png_values(img)
        assert mode == "L" and arr.dtype == np.uint8 and arr.shape == (128, 128)
        mode, lab = _png_values(busi128 / "labelsTr" / _label_name(img))
        assert mode == "L" and set(np.unique(lab)) <= {0, 1}
        lesion_cases += bool(lab.any())
    assert lesion_cases == N_TRAIN  # every BUSI benign/malignant case has a lesion


def test_busi_case_metadata(busi128, busi_root):
    meta = _metadata(busi128)
    assert meta["source"] == "BUSI"
    cases = meta["cases"]
    assert len(cases) == N_TRAIN
    labels = [c["label"] for c in cases.values()]
    assert labels.count("benign") > 0 and labels.count("malignant") > 0
    assert labels.count("benign") + labels.count("malignant") == N_TRAIN
    split = json.loads((busi_root / "split.json").read_text(encoding="utf-8"))
    assert sorted(c["source_name"] for c in cases.values()) == sorted(split["train"])
    for case_id, c in cases.items():
        assert set(c) == {"label", "source_name", "split", "original_size", "box"}
        assert c["split"] == "train" and c["source_name"].startswith(c["label"] + "/")
        x0, y0, x1, y1 = c["box"]
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    # stable order: by class, then by the number in the file name
    def key(name):
        cls, num = re.fullmatch(r"(\w+)/\w+ \((\d+)\)", name).groups()
        return cls != "benign", int(num)
    names = [cases[k]["source_name"] for k in sorted(cases)]
    assert names == sorted(names, key=key)


def test_busi_box_matches_written_label(busi128):
    cases = _metadata(busi128)["cases"]
    for case_id in sorted(cases)[:20]:
        _, lab = _png_values(busi128 / "labelsTr" / f"{case_id}.png")
        ys, xs = np.nonzero(lab)
        expected = [xs.min() / 128, ys.min() / 128, (xs.max() + 1) / 128, (ys.max() + 1) / 128]
        assert cases[case_id]["box"] == pytest.approx(expected, abs=1e-6)


def test_busi_nnunet_integrity(busi128):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(busi128), num_processes=1)  # raises on any problem


def test_busi_native_size_keeps_original_sizes(busi_native):
    cases = _metadata(busi_native)["cases"]
    assert len(cases) == N_TRAIN
    for case_id in sorted(cases)[::25]:
        mode, img = _png_values(busi_native / "imagesTr" / f"{case_id}_0000.png")
        _, lab = _png_values(busi_native / "labelsTr" / f"{case_id}.png")
        assert mode == "L" and list(img.shape) == cases[case_id]["original_size"] == list(lab.shape)
        assert set(np.unique(lab)) <= {0, 1}


@pytest.mark.parametrize("stem, extra", [("benign (100)", ["_mask_1"]), ("benign (195)", ["_mask_1", "_mask_2"])])
def test_busi_extra_masks_are_united(busi_native, busi_root, stem, extra):
    case_id = next(k for k, c in _metadata(busi_native)["cases"].items() if c["source_name"] == f"benign/{stem}")
    _, lab = _png_values(busi_native / "labelsTr" / f"{case_id}.png")
    folder = busi_root / "Dataset_BUSI_with_GT" / "benign"
    first = read_mask(folder / f"{stem}_mask.png")
    union = first.copy()
    for suffix in extra:
        union |= read_mask(folder / f"{stem}{suffix}.png")
    assert union.sum() > first.sum()  # the extra masks add lesion
    np.testing.assert_array_equal(lab.astype(bool), union)


def test_busi_withheld_test_split_is_skipped_with_a_note(busi_root, caplog):
    with caplog.at_level(logging.WARNING, logger="synthaug.io.public_sets"):
        assert list(iter_busi(busi_root, split="test")) == []
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1 and f"skipped {N_TEST} case(s)" in notes[0] and "withheld" in notes[0]


def test_iter_busi_matches_conversion_ids(busi128, busi_root):
    first = next(iter_busi(busi_root, split="train"))
    assert first["case_id"] in _metadata(busi128)["cases"]
    assert first["image"].dtype == np.uint8 and first["mask"].dtype == bool
    assert first["image"].shape == first["mask"].shape


# ----------------------------------------------------------------------------- STU
@pytest.mark.parametrize("sub", ["", "Hospital"])
def test_stu_is_a_test_set_with_fitted_binary_masks(stu_root, tmp_path, sub):
    out = convert_stu(stu_root / sub if sub else stu_root, tmp_path, dataset_id=503)
    assert out.name == "Dataset503_STU"
    assert not any((out / "imagesTr").iterdir()) and not any((out / "labelsTr").iterdir())
    images = sorted((out / "imagesTs").iterdir())
    assert len(images) == len(list((out / "labelsTs").iterdir())) == 42
    for img in images:
        _, arr = _png_values(img)
        _, lab = _png_values(out / "labelsTs" / _label_name(img))
        assert arr.shape == lab.shape and set(np.unique(lab)) <= {0, 1} and lab.any()
    assert json.loads((out / "dataset.json").read_text(encoding="utf-8"))["numTraining"] == 0
    meta = _metadata(out)
    assert meta["source"] == "STU" and len(meta["cases"]) == 42
    assert sorted(meta["cases"]) == [f"STU_{n:04d}" for n in range(1, 43)]
    assert all(c["label"] is None and c["split"] == "test" for c in meta["cases"].values())


def test_iter_stu_masks_are_resized_to_images(stu_root):
    rows = list(iter_stu(stu_root))
    assert len(rows) == 42
    assert all(r["mask"].shape == r["image"].shape and r["mask"].dtype == bool for r in rows)


# ----------------------------------------------------------------------------- refusals
def test_refuses_non_empty_destination(busi_root, tmp_path):
    existing = tmp_path / "Dataset501_BUSI"
    existing.mkdir()
    (existing / "mine.txt").write_text("user data")
    with pytest.raises(SynthaugError, match="not empty"):
        convert_busi(busi_root, tmp_path, dataset_id=501, size=128)
    assert (existing / "mine.txt").read_text(encoding="utf-8") == "user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset501_BUSI"]


def test_refuses_a_second_folder_with_the_same_id(busi_root, tmp_path):
    (tmp_path / "Dataset501_Other").mkdir()
    with pytest.raises(SynthaugError, match="same dataset id"):
        convert_busi(busi_root, tmp_path, dataset_id=501, size=128)


@pytest.mark.parametrize("dataset_id", [0, 1000, -3, "12", 1.5])
def test_refuses_bad_dataset_id(busi_root, tmp_path, dataset_id):
    with pytest.raises(SynthaugError, match="dataset id"):
        convert_busi(busi_root, tmp_path, dataset_id=dataset_id, size=128)
    assert not any(tmp_path.iterdir())


def test_refuses_missing_split_and_unwritable_destination(busi_root, tmp_path):
    with pytest.raises(SynthaugError, match="split file"):
        convert_busi(busi_root, tmp_path / "raw", dataset_id=1, split_file=tmp_path / "nope.json")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(SynthaugError, match="not a folder"):
        convert_busi(busi_root, blocker, dataset_id=1)


# ----------------------------------------------------------------------------- CLI
def test_cli_convert_busi_with_small_split(busi_root, tmp_path):
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["benign/benign (1)", "malignant/malignant (10)", "benign/benign (100)"],
                                 "test": ["benign/benign (102)"]}))
    result = CliRunner().invoke(main, ["convert", "busi", str(busi_root), str(tmp_path / "raw"), "--dataset-id", "7",
                                       "--size", "128", "--split", str(split)])
    assert result.exit_code == 0, result.output
    out = Path(result.output.strip().splitlines()[-1])
    assert out == tmp_path / "raw" / "Dataset007_BUSI"
    assert len(list((out / "imagesTr").iterdir())) == 3
    assert "synthaug: 3 cases: 2 benign, 1 malignant" in result.stderr  # what it made, before the folder
    skipped = json.loads((out / "dataset.json").read_text(encoding="utf-8"))["synthaug_conversion"]["skipped"]
    assert skipped["withheld (listed in the split, image not present)"] == 1
    assert skipped["not in the split"] == N_TRAIN - 3


def test_cli_reports_refusal_without_traceback(busi_root, tmp_path):
    result = CliRunner().invoke(main, ["convert", "busi", str(busi_root), str(tmp_path), "--dataset-id", "1000"])
    assert result.exit_code == 2 and "Error: dataset id 1000" in result.output


def test_cli_convert_stu_says_its_cases_are_test_only(stu_root, tmp_path):
    result = CliRunner().invoke(main, ["convert", "stu", str(stu_root), str(tmp_path), "--dataset-id", "9",
                                       "--size", "32"])
    assert result.exit_code == 0, result.output
    assert "synthaug: 0 in imagesTr (training), 42 in imagesTs (test only)" in result.stderr
    assert result.stdout == f"{tmp_path / 'Dataset009_STU'}\n"
