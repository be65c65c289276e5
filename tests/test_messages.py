"""Messages for common mistakes in a raw folder, and `convert --help` (issue 13, items 9 and 10).

A 0/255 mask must be recognised as such (with the fix), not called "multi-label";
an image without its channel suffix must be called that, not "channel 0100".
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from synthaug.cli import main
from synthaug.errors import SynthaugError
from synthaug.io.images import write_png
from synthaug.io.nnunet_raw import ZERO_ONE_FIX, RawDataset

from test_expand import make_raw


def _to_255(raw):
    for p in (raw / "labelsTr").glob("*.png"):
        write_png(p, (np.asarray(__import__("PIL.Image").Image.open(p)) > 0).astype(np.uint8) * 255)


def test_a_0_255_mask_is_named_and_the_printed_fix_works(tmp_path):
    raw = make_raw(tmp_path)
    _to_255(raw)
    with pytest.raises(SynthaugError) as e:
        RawDataset.open(raw)
    msg = str(e.value)
    assert "looks like a 0/255 mask" in msg and "nnU-Net wants" in msg and "multi-label" not in msg
    assert ZERO_ONE_FIX in msg
    # the command the message prints, run as a user would in the raw folder
    cmd = ZERO_ONE_FIX.replace("python -c", f"{sys.executable} -c").replace(
        "labelsTr/*.png", " ".join(f"labelsTr/{p.name}" for p in sorted((raw / "labelsTr").glob("*.png"))))
    subprocess.run(cmd, shell=True, cwd=raw, check=True)
    assert len(RawDataset.open(raw).case_ids()) == 6


def test_0_255_labels_in_dataset_json_are_named(tmp_path):
    raw = make_raw(tmp_path)
    dj = json.loads((raw / "dataset.json").read_text())
    dj["labels"] = {"background": 0, "lesion": 255}
    (raw / "dataset.json").write_text(json.dumps(dj))
    with pytest.raises(SynthaugError, match="look like 0/255 masks; nnU-Net wants background=0 and the lesion=1"):
        RawDataset.open(raw)


def test_other_label_values_are_still_multi_label(tmp_path):
    raw = make_raw(tmp_path)
    write_png(raw / "labelsTr" / "case_000.png", np.full((32, 32), 2, np.uint8))
    with pytest.raises(SynthaugError, match="multi-label datasets are not supported yet"):
        RawDataset.open(raw)


def test_images_without_channel_suffix_are_called_so(tmp_path):
    """`case_0100.png` would parse as channel 0100 of case `case`: say the suffix is missing."""
    raw = make_raw(tmp_path, n=3, case_prefix="case_0")  # cases case_0000 ... case_0002
    for p in sorted((raw / "imagesTr").glob("*_0000.png")):
        p.rename(p.with_name(p.name[: -len("_0000.png")] + ".png"))  # case_0000_0000.png -> case_0000.png
    with pytest.raises(SynthaugError) as e:
        RawDataset.open(raw)
    msg = str(e.value)
    assert "lacks the _0000 channel suffix" in msg and "channel 0" not in msg
    assert "imagesTr/case_0000.png" in msg and "imagesTr/case_0000_0000.png" in msg and "2 more" in msg


def test_one_image_without_suffix_among_good_ones(tmp_path):
    raw = make_raw(tmp_path)
    (raw / "imagesTr" / "case_003_0000.png").rename(raw / "imagesTr" / "case_003.png")
    with pytest.raises(SynthaugError, match=r"imagesTr/case_003.png does not follow nnU-Net naming CASE_0000.png: "
                                            r"it lacks the _0000 channel suffix"):
        RawDataset.open(raw)


def test_a_real_second_channel_is_still_called_a_channel(tmp_path):
    raw = make_raw(tmp_path)
    write_png(raw / "imagesTr" / "case_000_0001.png", np.zeros((32, 32), np.uint8))
    with pytest.raises(SynthaugError, match="is channel 0001 of case case_000; only single-channel"):
        RawDataset.open(raw)


def test_convert_help_lists_every_command_uncut():
    res = CliRunner().invoke(main, ["convert", "--help"], terminal_width=80)
    assert res.exit_code == 0, res.output
    listing = res.output[res.output.index("Commands:"):]
    entries = re.findall(r"^  (\w+)\s+(.*(?:\n {4,}.*)*)", listing, flags=re.M)
    assert [name for name, _ in entries] == ["busi", "folder", "stu", "volumes"]
    for name, text in entries:
        text = " ".join(text.split())
        assert not text.endswith("...") and text.endswith("."), (name, text)
        assert len(text) > 45, (name, text)  # click's default cut
    top = CliRunner().invoke(main, ["--help"], terminal_width=80).output
    line = next(l for l in top.splitlines() if l.strip().startswith("convert"))
    assert "..." not in line


def test_every_command_has_a_whole_line_in_the_overview():
    """`synthaug --help` is where a newcomer starts: no command's description is cut off with '...'."""
    res = CliRunner().invoke(main, ["--help"], terminal_width=80)
    assert res.exit_code == 0
    listing = res.output.split("Commands:", 1)[1]
    assert "..." not in listing, listing
    assert all(name in listing for name in main.commands)
