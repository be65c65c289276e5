"""Every bad input gets a clear SynthaugError, through the API and through the CLI (exit code 2,
'Error: ...'), and nothing is written. Raw folders come from ``make_raw`` in test_expand.py."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from synthaug.cli import main
from synthaug.errors import SynthaugError
from synthaug.expand import expand, write_splits
from synthaug.io.images import write_png
from synthaug.io.manifest import MANIFEST_NAME
from synthaug.io.nnunet_raw import RawDataset
from synthaug.pipelines.registry import create_generator
from test_expand import make_raw, snapshot


@pytest.fixture(autouse=True)
def _no_preprocessed(monkeypatch):
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)


@pytest.fixture
def raw(tmp_path):
    return make_raw(tmp_path)


def cli_fails(args, message, root):
    """The CLI exits 2 with 'Error: ...<message>...' and leaves ``root`` byte-identical."""
    before = snapshot(root) if root.exists() else None
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 2, result.output
    assert "Error: " in result.output and message in result.output, result.output
    assert "Traceback" not in result.output
    if before is not None:
        assert snapshot(root) == before


def _edit_json(root, **changes):
    dj = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    for k, v in changes.items():
        if v is None:
            dj.pop(k, None)
        else:
            dj[k] = v
    (root / "dataset.json").write_text(json.dumps(dj))


def _apng(path):
    frames = [Image.fromarray(np.full((32, 32), v, np.uint8)) for v in (10, 200)]
    frames[0].save(path, format="PNG", save_all=True, append_images=frames[1:])


BROKEN_FOLDERS = {
    "no dataset.json": (lambda r: (r / "dataset.json").unlink(), "has no dataset.json"),
    "bad JSON": (lambda r: (r / "dataset.json").write_text("{not json"), "is not valid JSON"),
    "JSON list": (lambda r: (r / "dataset.json").write_text("[]"), "must hold a JSON object"),
    "no numTraining": (lambda r: _edit_json(r, numTraining=None), "missing required key(s) numTraining"),
    "no channels, labels": (lambda r: _edit_json(r, channel_names=None, labels=None),
                            "missing required key(s) channel_names, labels"),
    "nifti": (lambda r: _edit_json(r, file_ending=".nii.gz"), "only 2D PNG datasets (file_ending '.png') are supported"),
    "3D declared": (lambda r: _edit_json(r, tensorImageSize="3D"), "synthaug needs 2D images"),
    "3D frames": (lambda r: _apng(r / "imagesTr" / "case_002_0000.png"), "3D volume; synthaug needs 2D images"),
    "two channels declared": (lambda r: _edit_json(r, channel_names={"0": "US", "1": "Doppler"}),
                              "only single-channel images are supported"),
    "second channel file": (lambda r: write_png(r / "imagesTr" / "case_000_0001.png", np.zeros((32, 32), np.uint8)),
                            "only single-channel images are supported"),
    "RGB image": (lambda r: Image.new("RGB", (32, 32)).save(r / "imagesTr" / "case_000_0000.png"),
                  "only single-channel 8-bit grayscale images are supported"),
    "three labels": (lambda r: _edit_json(r, labels={"background": 0, "benign": 1, "malignant": 2}),
                     "multi-label datasets are not supported yet, only binary lesion masks"),
    "region labels": (lambda r: _edit_json(r, labels={"background": 0, "lesion": [1, 2]}),
                      "multi-label datasets are not supported yet"),
    "label value 2": (lambda r: write_png(r / "labelsTr" / "case_000.png", np.full((32, 32), 2, np.uint8)),
                      "multi-label datasets are not supported yet, only binary lesion masks"),
    "label 0/255": (lambda r: write_png(r / "labelsTr" / "case_002.png", np.full((32, 32), 255, np.uint8)),
                    "looks like a 0/255 mask"),
    "RGB label": (lambda r: Image.new("RGB", (32, 32)).save(r / "labelsTr" / "case_000.png"),
                  "label maps must be single-channel"),
    "label size": (lambda r: write_png(r / "labelsTr" / "case_000.png", np.zeros((16, 16), np.uint8)),
                   "is 16x16 but its image is 32x32"),
    "missing label": (lambda r: (r / "labelsTr" / "case_003.png").unlink(), "images without labels: case_003"),
    "missing image": (lambda r: (r / "imagesTr" / "case_004_0000.png").unlink(), "labels without images: case_004"),
    "bad image name": (lambda r: write_png(r / "imagesTr" / "scan.png", np.zeros((32, 32), np.uint8)),
                       "does not follow nnU-Net naming CASE_0000.png"),
    "no labelsTr": (lambda r: [p.unlink() for p in (r / "labelsTr").iterdir()] and (r / "labelsTr").rmdir(),
                    "has no labelsTr/ folder"),
    "numTraining too high": (lambda r: _edit_json(r, numTraining=7), "numTraining is 7 but imagesTr/labelsTr hold 6 cases"),
    "numTraining text": (lambda r: _edit_json(r, numTraining="6"), "numTraining must be a non-negative integer"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_FOLDERS))
def test_broken_raw_folder(case, raw, tiny_generator_dir):
    breaker, message = BROKEN_FOLDERS[case]
    breaker(raw)
    with pytest.raises(SynthaugError) as err:
        RawDataset.open(raw)
    assert message in str(err.value)
    cli_fails(["expand", raw, "--ratio", "1", "--generator", tiny_generator_dir], message, raw)
    cli_fails(["splits", raw, "--out", raw.parent / "splits.json"], message, raw)
    assert not (raw.parent / "splits.json").exists()


def test_folder_name_and_existence(tmp_path, tiny_generator_dir):
    raw = make_raw(tmp_path, name="BUSI_raw")
    cli_fails(["expand", raw, "--ratio", "1", "--generator", tiny_generator_dir], "expected DatasetNNN_Name", raw)
    missing = tmp_path / "Dataset123_Nope"
    cli_fails(["expand", missing, "--ratio", "1", "--generator", tiny_generator_dir], "does not exist", missing)
    cli_fails(["revert", missing], "does not exist", missing)
    assert not missing.exists()


def test_bad_case_metadata(raw, tiny_generator_dir):
    (raw / "case_metadata.json").write_text("{oops")
    with pytest.raises(SynthaugError, match="case_metadata.json is not valid JSON"):
        RawDataset.open(raw).metadata()
    cli_fails(["expand", raw, "--ratio", "1", "--generator", tiny_generator_dir], "case_metadata.json is not valid JSON", raw)


@pytest.mark.parametrize("ratio", [0, -1, 10.5, math.nan, math.inf])
def test_ratio_out_of_range(ratio, raw, tiny_generator_dir):
    with pytest.raises(SynthaugError, match=r"ratio must be in \(0, 10\]"):
        expand(raw, ratio, generator=str(tiny_generator_dir))
    cli_fails(["expand", raw, "--ratio", ratio, "--generator", tiny_generator_dir], "ratio must be in (0, 10]", raw)


def test_other_bad_arguments(raw, tiny_generator_dir):
    gen = tiny_generator_dir
    cli_fails(["expand", raw, "--ratio", "1", "--generator", gen, "--seed", "-1"], "seed must be >= 0", raw)
    cli_fails(["expand", raw, "--ratio", "1", "--generator", gen, "--batch-size", "0"], "Invalid value for '--batch-size'", raw)
    cli_fails(["expand", raw, "--ratio", "1", "--generator", "no-such-generator"], "unknown generator", raw)
    cli_fails(["expand", raw, "--ratio", "1", "--generator", raw.parent], "synthaug.json is missing", raw)
    cli_fails(["revert", raw], "nothing to revert", raw)
    cli_fails(["splits", raw], "nnUNet_preprocessed is not set", raw)
    cli_fails(["splits", raw, "--out", raw.parent / "s.json", "--folds", "7"], "cannot make 7 folds from 6 real cases", raw)
    with pytest.raises(SynthaugError, match="cannot make 1 folds"):
        write_splits(raw, out=raw.parent / "s.json", folds=1)


def test_too_few_real_cases_for_nnunet_folds(tmp_path, tiny_generator_dir, monkeypatch):
    raw = make_raw(tmp_path, n=4)
    (tmp_path / "pre" / raw.name).mkdir(parents=True)
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    cli_fails(["expand", raw, "--ratio", "1", "--generator", tiny_generator_dir], "cannot make 5 folds from 4 real cases", raw)
    assert not (tmp_path / "pre" / raw.name / "splits_final.json").exists()


def test_hand_edited_manifest_is_detected(raw, tiny_generator_dir):
    gen = str(tiny_generator_dir)
    expand(raw, 1.0, generator=gen)
    m = json.loads((raw / MANIFEST_NAME).read_text(encoding="utf-8"))
    m["cases"]["synth_00001"]["seed"] = 99
    (raw / MANIFEST_NAME).write_text(json.dumps(m))
    for args in (["expand", raw, "--ratio", "1", "--generator", gen], ["revert", raw], ["splits", raw, "--out", raw / "x"]):
        cli_fails(args, "manifest was edited by hand", raw)
    (raw / MANIFEST_NAME).write_text(json.dumps(m)[:-20])
    cli_fails(["revert", raw], "the manifest was edited by hand or truncated", raw)


def test_other_generator_is_refused_with_a_revert_hint(raw, tiny_generator_dir, tmp_path):
    expand(raw, 1.0, generator=str(tiny_generator_dir))
    tiny = type(create_generator(tiny_generator_dir))
    other = tiny(tiny.build(seed=3)).save_pretrained(tmp_path / "other")
    cli_fails(["expand", raw, "--ratio", "1", "--generator", other],
              "was expanded with a different generator/checkpoint/steps", raw)
    cli_fails(["expand", raw, "--ratio", "1", "--generator", other], "run `synthaug revert", raw)


def test_files_named_like_synthetic_cases_are_never_deleted(raw, tiny_generator_dir):
    expand(raw, 0.5, generator=str(tiny_generator_dir))
    write_png(raw / "imagesTr" / "synth_00042_0000.png", np.zeros((32, 32), np.uint8))
    write_png(raw / "labelsTr" / "synth_00042.png", np.zeros((32, 32), np.uint8))
    for args in (["expand", raw, "--ratio", "1", "--generator", tiny_generator_dir], ["revert", raw]):
        cli_fails(args, "synth_00042 named like synthetic cases but listed in no synthaug manifest", raw)


def test_unwritable_folder_through_the_cli(raw, tiny_generator_dir, monkeypatch):
    import os

    real_access = os.access

    def read_only(path):  # what os.access reports for a read-only folder when not running as root
        return lambda p, mode, **k: False if str(p) == str(path) and mode & os.W_OK else real_access(p, mode, **k)

    monkeypatch.setattr(os, "access", read_only(raw))
    cli_fails(["expand", raw, "--ratio", "1", "--generator", tiny_generator_dir], "is not writable; nothing was changed", raw)
    monkeypatch.undo()
    expand(raw, 1.0, generator=str(tiny_generator_dir))
    monkeypatch.setattr(os, "access", read_only(raw / "imagesTr"))
    cli_fails(["revert", raw], "is not writable; nothing was changed", raw)


@pytest.mark.parametrize("name, message", [
    ("missing", "{path} is not a folder"),  # refused before the trial's imports
    ("empty", "'empty' is not an nnU-Net v2 raw dataset folder name"),  # refused after them (timm loaded)
])
def test_a_bad_trial_folder_is_one_line_in_a_fresh_process(tmp_path, name, message):
    """In a new process (where timm's import warns about torch.jit.interface), the error is the only line."""
    import subprocess
    import sys

    path = tmp_path / name
    if name == "empty":
        path.mkdir()
    res = subprocess.run([sys.executable, "-m", "synthaug.cli", "trial", str(path)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: " + message.format(path=path)), res.stderr
