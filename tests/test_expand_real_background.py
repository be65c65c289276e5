"""`synthaug expand --background real`: pairs repainted into the folder's own real cases, recorded
per case, fold-safe in splits_final.json, resumable and exactly revertible."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

from synthaug.cli import main
from synthaug.expand import crossval_splits, expand, revert
from synthaug.io.images import read_gray, resize_image, resize_mask, write_json, write_png
from synthaug.io.manifest import MANIFEST_NAME
from synthaug.io.public_sets import iter_busi
from tests.test_expand import snapshot

N_REAL = 10


@pytest.fixture(scope="module")
def busi_rows(busi_root):
    rows = []
    for row in iter_busi(busi_root, split="train"):
        rows.append(row)
        if len(rows) == N_REAL:
            return rows


def make_busi_raw(parent, rows, size=(72, 96)):
    """A raw folder of real BUSI cases (small, two aspect ratios so native sizes matter)."""
    root = parent / "Dataset995_BusiBits"
    meta = {}
    for i, r in enumerate(rows):
        hw = size if i % 2 else (size[0], size[0])
        case = f"busi_{i:03d}"
        write_png(root / "imagesTr" / f"{case}_0000.png", resize_image(r["image"], hw))
        write_png(root / "labelsTr" / f"{case}.png", resize_mask(r["mask"], hw).astype(np.uint8))
        meta[case] = {"label": r["label"], "split": "train"}
    generate_dataset_json(str(root), {0: "ultrasound"}, {"background": 0, "lesion": 1}, len(rows), ".png",
                          dataset_name=root.name)
    write_json(root / "case_metadata.json", {"source": "test", "cases": meta})
    return root


def test_crossval_puts_a_background_case_only_in_folds_training_its_case():
    real = [f"r{i}" for i in range(10)]
    splits = crossval_splits(real, ["s0", "s1"], backgrounds={"s0": "r3"})
    for fold in splits:
        assert "s1" in fold["train"] and "s0" not in fold["val"] and "s1" not in fold["val"]
        assert ("s0" in fold["train"]) == ("r3" in fold["train"])
    assert sum("s0" in f["train"] for f in splits) == 4  # 5 folds, r3 validates in one


@pytest.mark.realdata
@pytest.mark.slow
def test_expand_real_background_is_recorded_fold_safe_and_revertible(tmp_path, busi_rows, monkeypatch):
    raw = make_busi_raw(tmp_path, busi_rows)
    pre = tmp_path / "pre" / raw.name
    pre.mkdir(parents=True)
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    before = snapshot(raw)
    real_images = {p.name: p.read_bytes() for p in (raw / "imagesTr").iterdir()}
    result = CliRunner().invoke(main, ["expand", str(raw), "--ratio", "0.8", "--background", "real"])
    assert result.exit_code == 0, result.output
    m = json.loads((raw / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert m["generator"]["background"] == "real" and len(m["cases"]) == 8
    real = set(m["real_cases"])
    for name, e in m["cases"].items():
        assert e["background"] in real and e["target"]["label"] in ("benign", "malignant")
        img = read_gray(raw / "imagesTr" / f"{name}_0000.png")
        bg = read_gray(raw / "imagesTr" / f"{e['background']}_0000.png")
        assert img.shape == bg.shape == tuple(e["size"])  # the background's own size
        assert (img == bg).mean() > 0.4  # mostly the real tissue, exactly
        assert not np.array_equal(img, bg)
    for p, data in real_images.items():  # real cases untouched
        assert (raw / "imagesTr" / p).read_bytes() == data
    splits = json.loads((pre / "splits_final.json").read_text(encoding="utf-8"))
    for fold in splits:
        for name, e in m["cases"].items():
            assert name not in fold["val"]
            assert (name in fold["train"]) == (e["background"] in fold["train"])
    # idempotent; a ratio change keeps the mode; another mode is another expansion
    again = CliRunner().invoke(main, ["expand", str(raw), "--ratio", "0.8", "--background", "real"])
    assert again.exit_code == 0 and again.stdout.startswith("0 synthetic case(s) added in")
    other = CliRunner().invoke(main, ["expand", str(raw), "--ratio", "0.8"])
    assert other.exit_code == 2 and "revert" in other.output
    revert(raw)
    assert snapshot(raw) == before
    assert not (pre / "splits_final.json").exists()
