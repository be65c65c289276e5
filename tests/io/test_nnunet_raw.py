"""RawDataset: the API the expander, the datasets and the CLI rely on (errors: tests/test_bad_input.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from nnunetv2.utilities.utils import get_identifiers_from_splitted_dataset_folder
from PIL import Image

from synthaug.errors import SynthaugError
from synthaug.io.images import write_png
from synthaug.io.nnunet_raw import RawDataset
from test_expand import make_raw

CASES = [f"case_{i:03d}" for i in range(6)]


def test_attributes_and_queries(tmp_path):
    root = make_raw(tmp_path, name="Dataset501_BUSI_v2")
    raw = RawDataset.open(root)
    assert raw.root == root and raw.dataset_id == 501 and raw.name == "BUSI_v2" and raw.file_ending == ".png"
    assert raw.dataset_json["numTraining"] == 6 and raw.dataset_json["labels"] == {"background": 0, "lesion": 1}
    assert raw.case_ids() == CASES
    assert list(get_identifiers_from_splitted_dataset_folder(str(root / "imagesTr"), ".png")) == CASES  # nnU-Net agrees
    assert raw.image_path("case_001") == root / "imagesTr" / "case_001_0000.png"
    assert raw.label_path("case_001") == root / "labelsTr" / "case_001.png"
    assert raw.case_sizes() == {c: ((24, 32) if i % 2 else (32, 32)) for i, c in enumerate(CASES)}
    meta = raw.metadata()
    assert set(meta) == set(CASES) and meta["case_001"]["label"] == "malignant"


def test_metadata_absent_or_flat(tmp_path):
    root = make_raw(tmp_path, metadata=False)
    assert RawDataset.open(root).metadata() == {}
    (root / "case_metadata.json").write_text(json.dumps({"case_000": {"label": "benign"}}))  # flat mapping
    assert RawDataset.open(root).metadata() == {"case_000": {"label": "benign"}}
    (root / "case_metadata.json").write_text("[1, 2]")
    with pytest.raises(SynthaugError, match="expected"):
        RawDataset.open(root).metadata()


def test_ignores_temporaries_other_files_and_accepts_1bit_labels(tmp_path):
    root = make_raw(tmp_path)
    (root / "imagesTr" / ".case_009_0000.png.x1y2.tmp").write_bytes(b"half")
    (root / "imagesTr" / ".hidden.png").write_bytes(b"not an image")
    (root / "labelsTr" / "README.txt").write_text("notes")
    Image.fromarray(np.eye(32, dtype=bool)).convert("1").save(root / "labelsTr" / "case_000.png")
    assert RawDataset.open(root).case_ids() == CASES


def test_exclude_and_check_count(tmp_path):
    """The expander hides its own cases from validation and checks counts itself."""
    root = make_raw(tmp_path)
    write_png(root / "imagesTr" / "synth_00000_0000.png", np.zeros((8, 8), np.uint8))  # label not written yet
    with pytest.raises(SynthaugError, match="images without labels: synth_00000"):
        RawDataset.open(root)
    raw = RawDataset.open(root, exclude=lambda c: c.startswith("synth_"))
    assert raw.case_ids() == CASES
    _dj = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    (root / "dataset.json").write_text(json.dumps({**_dj, "numTraining": 9}))
    raw = RawDataset.open(root, check_count=False, exclude=lambda c: c.startswith("synth_"))
    with pytest.raises(SynthaugError, match="numTraining is 9 but imagesTr/labelsTr hold 6 cases$"):
        raw.check_count()
