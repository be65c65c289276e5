"""`synthaug convert folder`: plain image/mask folders -> nnU-Net raw folder, and every bad input refused
with one line and nothing written (issue 17, item 1). Small synthetic files: fast, no real data."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from synthaug.cli import main
from synthaug.errors import SynthaugError
from synthaug.io.folders import convert_folder


def _image(h=40, w=48, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def _mask(h=40, w=48, on=255) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[10:20, 12:30] = on
    return m


def _save(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(arr)
    if mode:
        im = im.convert(mode)
    im.save(path)
    return path


@pytest.fixture
def two_folders(tmp_path) -> tuple[Path, Path]:
    """Four cases in every format and mask mode a user may have: png/jpg/bmp/tif, 0/255, 0/1, 1-bit, RGBA."""
    img, msk = tmp_path / "img", tmp_path / "gt"
    _save(img / "case 1.png", _image(seed=1))
    _save(img / "case2.jpg", _image(seed=2), "RGB")
    _save(img / "case10.bmp", _image(seed=3))
    _save(img / "x.tif", (_image(seed=4).astype(np.uint16) * 200))  # 16-bit
    _save(msk / "case 1.png", _mask())
    _save(msk / "case2_mask.png", _mask(on=1))
    _save(msk / "case10.png", _mask(), "1")
    _save(msk / "x.png", np.stack([_mask()] * 3 + [np.full((40, 48), 255, np.uint8)], -1))
    return img, msk


def _run(*args):
    return CliRunner().invoke(main, ["convert", "folder", *map(str, args)])


def _nothing_written(dst: Path) -> bool:
    return not dst.exists() or not any(dst.rglob("*"))


def test_two_folders_convert_and_pass_nnunet_check(two_folders, tmp_path):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    img, msk = two_folders
    csv = tmp_path / "types.csv"
    csv.write_text("image,tumour type\ncase 1.png,Benign\ncase2,malignant\ncase10,\nx.tif,unknown\n")
    res = _run(img, msk, tmp_path / "raw", "--dataset-id", 9, "--name", "Mine", "--labels", csv, "--size", 32)
    assert res.exit_code == 0, res.output
    out = tmp_path / "raw" / "Dataset009_Mine"
    assert res.stdout.strip() == str(out)  # the folder alone on stdout; what was made on stderr
    assert "synthaug: 4 cases: 1 benign, 1 malignant, 2 without a type; 0 with an empty mask" in res.stderr
    assert "resized 48x40 (width x height) to 32x32: 4 non-square case(s) stretched (aspect ratio changed, up to 1.20:1)" in res.stderr
    verify_dataset_integrity(str(out), num_processes=1)
    meta = json.loads((out / "case_metadata.json").read_text())["cases"]
    # natural order: "case 1", "case2", "case10", "x"
    assert [(c, m["source_name"], m["label"]) for c, m in sorted(meta.items())] == [
        ("Mine_0000", "case 1.png", "benign"), ("Mine_0001", "case2.jpg", "malignant"),
        ("Mine_0002", "case10.bmp", None), ("Mine_0003", "x.tif", None)]
    for c, m in meta.items():
        with Image.open(out / "imagesTr" / f"{c}_0000.png") as im:
            assert im.mode == "L" and im.size == (32, 32)
        lab = np.asarray(Image.open(out / "labelsTr" / f"{c}.png"))
        assert set(np.unique(lab)) == {0, 1}  # 0/255, 0/1, 1-bit and RGBA masks all became lesion=1
        assert m["original_size"] == [40, 48] and m["box"] is not None
    tif = np.asarray(Image.open(out / "imagesTr" / "Mine_0003_0000.png"))
    assert tif.max() > 200 and tif.min() < 50  # 16-bit stretched, not clipped to white
    dj = json.loads((out / "dataset.json").read_text())
    assert dj["numTraining"] == 4 and dj["labels"] == {"background": 0, "lesion": 1}


def test_one_folder_with_mask_suffix_unites_extra_masks(tmp_path):
    src = tmp_path / "busi_like"
    _save(src / "a.png", _image())
    _save(src / "a_mask.png", _mask())
    m2 = np.zeros((40, 48), np.uint8)
    m2[30:35, 5:8] = 255
    _save(src / "a_mask_1.png", m2)
    _save(src / "b.png", _image(seed=5))
    _save(src / "b_mask.png", _mask())
    out = convert_folder(src, src, tmp_path / "raw", dataset_id=3)
    assert out.name == "Dataset003_Custom"
    lab = np.asarray(Image.open(out / "labelsTr" / "Custom_0000.png"))
    assert lab.sum() == 10 * 18 + 5 * 3
    meta = json.loads((out / "case_metadata.json").read_text())["cases"]
    assert {m["label"] for m in meta.values()} == {None}


@pytest.mark.parametrize("case, expected", [
    ("unmatched", "names do not match: 1 image(s) without a mask (lonely.png); 1 mask(s) without an image (stray.png)"),
    ("empty", "no images"),
    ("duplicate", "occur with two extensions, e.g. case2.jpg and case2.png"),
    ("many_values", "has 3 values (0, 128, 255), not two: binarise the masks, e.g. pass --mask-threshold 128"),
    ("unreadable", "cannot read"),
    ("csv_unknown", "names 1 case(s) with no image: nobody"),
    ("csv_type", "unsupported tumour type(s) case 1: 'cancer'; supported: benign, malignant"),
    ("csv_missing", "has no row for 3 case(s)"),
    ("size", "is 20x20 but its image"),
    ("all_empty", "all 4 masks in"),
])
def test_bad_input_one_line_nothing_written(two_folders, tmp_path, case, expected):
    img, msk = two_folders
    dst = tmp_path / "new" / "raw"  # does not exist yet: a failed run must not leave it behind
    extra = []
    if case == "unmatched":
        _save(img / "lonely.png", _image())
        _save(msk / "stray.png", _mask())
    elif case == "empty":
        img = tmp_path / "empty"
        img.mkdir()
    elif case == "duplicate":
        _save(img / "case2.png", _image())
    elif case == "many_values":
        m = _mask()
        m[0, 0] = 128
        _save(msk / "case10.png", m)
    elif case == "unreadable":
        (msk / "x.png").write_bytes(b"not a png")
    elif case.startswith("csv"):
        rows = {"csv_unknown": "case 1,benign\ncase2,benign\ncase10,\nx,\nnobody,benign\n",
                "csv_type": "case 1,cancer\ncase2,benign\ncase10,\nx,\n", "csv_missing": "case 1,benign\n"}[case]
        (tmp_path / "t.csv").write_text(rows)
        extra = ["--labels", tmp_path / "t.csv"]
    elif case == "size":
        _save(msk / "case10.png", _mask(20, 20))
    elif case == "all_empty":  # e.g. the image folder passed twice, or masks whose lesion the reader cannot see
        for p in msk.iterdir():
            p.unlink()
        for stem in ("case 1", "case2", "case10", "x"):
            _save(msk / f"{stem}.png", np.zeros((40, 48), np.uint8))
    res = _run(img, msk, dst, "--dataset-id", 5, *extra)
    assert res.exit_code == 2, res.output
    assert res.output.startswith("Error: ") and res.output.count("\n") == 1, res.output
    assert expected in res.output
    assert not (tmp_path / "new").exists()


def test_mask_threshold_binarises_jpeg_masks(tmp_path):
    img, msk = tmp_path / "i", tmp_path / "m"
    _save(img / "a.png", _image())
    _save(msk / "a.jpg", _mask())  # JPEG: ringing values around the edge
    with pytest.raises(SynthaugError, match="--mask-threshold"):
        convert_folder(img, msk, tmp_path / "raw", dataset_id=4)
    assert not any((tmp_path / "raw").rglob("*"))
    out = convert_folder(img, msk, tmp_path / "raw", dataset_id=4, mask_threshold=127)
    lab = np.asarray(Image.open(out / "labelsTr" / "Custom_0000.png"))
    assert abs(int(lab.sum()) - 180) < 20


def test_existing_destination_is_kept(two_folders, tmp_path):
    img, msk = two_folders
    dst = tmp_path / "raw"
    (dst / "Dataset005_Other").mkdir(parents=True)
    res = _run(img, msk, dst, "--dataset-id", 5)
    assert res.exit_code == 2 and "same dataset id" in res.output
    assert [p.name for p in dst.iterdir()] == ["Dataset005_Other"]


def test_keep_aspect_pads_and_says_so(two_folders, tmp_path):
    img, msk = two_folders
    res = _run(img, msk, tmp_path / "raw", "--dataset-id", 6, "--size", 32, "--keep-aspect")
    assert res.exit_code == 0, res.output
    out = Path(res.stdout.strip())
    assert "longer side scaled to 32, 4 non-square case(s) padded with black (aspect ratio kept)" in res.stderr
    meta = json.loads((out / "case_metadata.json").read_text())["cases"]
    assert {tuple(m["pad"]) for m in meta.values()} == {(2, 3, 0, 0)}  # 48x40 -> 32x27, padded 2 above, 3 below
    lab = np.asarray(Image.open(out / "labelsTr" / "Custom_0000.png"))
    image = np.asarray(Image.open(out / "imagesTr" / "Custom_0000_0000.png"))
    assert image.shape == (32, 32) and not image[:2].any() and not image[-3:].any() and image[2:-3].any()
    assert not lab[:2].any() and lab.any()
    assert json.loads((out / "dataset.json").read_text())["synthaug_conversion"]["keep_aspect"] is True
    bad = _run(img, msk, tmp_path / "raw2", "--dataset-id", 7, "--keep-aspect")
    assert bad.exit_code == 2 and "--keep-aspect needs --size" in bad.output and not (tmp_path / "raw2").exists()


def test_mostly_empty_masks_warn(two_folders, tmp_path):
    img, msk = two_folders
    for stem in ("case2_mask", "case10", "x"):
        (msk / f"{stem}.png").unlink()
        _save(msk / f"{stem}.png", np.zeros((40, 48), np.uint8))
    res = _run(img, msk, tmp_path / "raw", "--dataset-id", 8)
    assert res.exit_code == 0, res.output
    assert "3 with an empty mask" in res.stderr and "warning: 3 of 4 masks are empty" in res.stderr
    assert "sizes kept (48x40, width x height)" in res.stderr
