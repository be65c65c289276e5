"""The shared nnU-Net raw writer and input refusals, on tiny in-memory cases (no real data needed)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from synthaug.errors import SynthaugError
from synthaug.io.public_sets import CASE_METADATA, convert_busi, convert_stu, raw_dataset_name, write_raw_dataset


def _case(i, **kw):
    img = np.full((8, 10), 50 + i, np.uint8)
    mask = np.zeros((8, 10), bool)
    mask[2:4, 3:7] = True
    return {"case_id": f"X_{i:04d}", "image": img, "mask": mask, "label": None, "source_name": f"x{i}", **kw}


@pytest.mark.parametrize("bad", [
    {"image": np.zeros((8, 10), np.float32)},
    {"mask": np.zeros((4, 4), bool)},
    {"split": "val"},
    {"case_id": "../evil"},
])
def test_writer_failure_leaves_nothing(tmp_path, bad):
    with pytest.raises(SynthaugError):
        write_raw_dataset([_case(0), _case(1, **bad)], tmp_path, 9, "X", source="X")
    assert not any(tmp_path.iterdir())  # neither the dataset nor the hidden .partial folder


def test_writer_interrupted_leaves_nothing(tmp_path):
    def cases():
        yield _case(0)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_raw_dataset(cases(), tmp_path, 9, "X", source="X")
    assert not any(tmp_path.iterdir())


def test_writer_into_empty_existing_folder_and_resize(tmp_path):
    (tmp_path / "Dataset009_X").mkdir()
    out = write_raw_dataset([_case(0), _case(1, split="test")], tmp_path, 9, "X", source="X", size=20)
    meta = json.loads((out / CASE_METADATA).read_text(encoding="utf-8"))["cases"]
    assert meta["X_0000"] == {"label": None, "source_name": "x0", "split": "train", "original_size": [8, 10],
                              "box": [0.3, 0.25, 0.7, 0.5]}
    assert meta["X_0001"]["split"] == "test"
    with Image.open(out / "imagesTs" / "X_0001_0000.png") as im:
        assert im.size == (20, 20) and im.mode == "L"
    assert json.loads((out / "dataset.json").read_text(encoding="utf-8"))["numTraining"] == 1

def test_dataset_folder_names():
    assert raw_dataset_name(7, "BUSI") == "Dataset007_BUSI"
    for bad_name in ("", "a/b", "has space", ".hidden"):
        with pytest.raises(SynthaugError, match="dataset name"):
            raw_dataset_name(7, bad_name)
    with pytest.raises(SynthaugError, match="size"):
        write_raw_dataset([], "unused", 7, "X", source="X", size=0)


def test_no_cases_is_refused(tmp_path):
    with pytest.raises(SynthaugError, match="no X cases"):
        write_raw_dataset([], tmp_path, 9, "X", source="X")
    assert not any(tmp_path.iterdir())


def test_refuses_bad_source_layout(tmp_path):
    (tmp_path / "src" / "benign").mkdir(parents=True)
    with pytest.raises(SynthaugError, match="does not look like BUSI"):
        convert_busi(tmp_path / "src", tmp_path / "raw", dataset_id=1)
    with pytest.raises(SynthaugError, match="does not look like STU"):
        convert_stu(tmp_path / "src", tmp_path / "raw", dataset_id=1)
