"""`synthaug sample`, `synthaug demo` and `synthaug generators` through the CLI on a tiny PIG."""
from __future__ import annotations

import json
import re

import numpy as np
from click.testing import CliRunner
from PIL import Image

from synthaug.cli import main
from synthaug.data import PairBank
from synthaug.io.images import sha256_file


def test_sample_writes_pairs_preview_and_a_readable_bank(tiny_pig_dir, tmp_path):
    out = tmp_path / "s"
    res = CliRunner().invoke(main, ["sample", "--generator", str(tiny_pig_dir), "-n", "3", "--out", str(out),
                                    "--type", "malignant", "--steps", "2", "--scheduler", "dpm++"])
    assert res.exit_code == 0, res.output
    said = re.findall(r"wrote .*", res.output)  # one line: what was written, by what, how long, where
    assert len(said) == 1, res.output
    said = said[0]
    assert said.startswith("wrote 3 pairs (3 malignant) by pig (torch") and said.count(str(out)) == 1, said
    meta = json.loads((out / "pairs.json").read_text(encoding="utf-8"))["pairs"]
    assert len(meta) == 3 and {m["label"] for m in meta.values()} == {"malignant"}
    assert {m["scheduler"] for m in meta.values()} == {"dpm++"}
    mask = np.asarray(Image.open(out / "masks" / "pair_00000.png"))
    assert set(np.unique(mask)) <= {0, 1}
    assert Image.open(out / "preview.png").size[0] > 0
    bank = PairBank.open(out)
    assert len(bank) == 3 and bank[0].meta.get("label") == "malignant"


def test_sample_mask_guidance_reaches_pig_and_is_refused_elsewhere(tiny_pig_dir, tmp_path):
    args = ["sample", "-n", "2", "--steps", "2", "--seed", "3"]
    res = CliRunner().invoke(main, args + ["--generator", str(tiny_pig_dir), "--out", str(tmp_path / "g"),
                                           "--mask-guidance", "3"])
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "g" / "pairs.json").read_text(encoding="utf-8"))["pairs"]
    assert {m["mask_guidance"] for m in meta.values()} == {3.0}
    for bad, says in (([], "PIG sampler option"), (["--generator", str(tiny_pig_dir)], ">= 0")):
        w = "-1" if bad else "2"
        res = CliRunner().invoke(main, args + bad + ["--out", str(tmp_path / f"bad{w}"), "--mask-guidance", w])
        assert res.exit_code != 0 and says in res.output and not (tmp_path / f"bad{w}").exists()


def test_mixed_preview_has_a_benign_row_above_a_malignant_row(tiny_pig_dir, tmp_path):
    out = tmp_path / "s"
    res = CliRunner().invoke(main, ["sample", "--generator", str(tiny_pig_dir), "-n", "6", "--out", str(out),
                                    "--steps", "2"])
    assert res.exit_code == 0, res.output
    labels = [m["label"] for m in json.loads((out / "pairs.json").read_text(encoding="utf-8"))["pairs"].values()]
    assert labels == ["benign", "malignant"] * 3  # generated alternating ...
    w, h = Image.open(out / "preview.png").size
    assert w == 3 * 128 and h == 2 * (128 + 14)  # ... shown as one row per type


def test_sample_rejects_a_bad_box_and_an_unknown_generator(tmp_path):
    res = CliRunner().invoke(main, ["sample", "--generator", "nope", "-n", "1", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "unknown generator" in res.output
    res = CliRunner().invoke(main, ["sample", "-n", "1", "--out", str(tmp_path / "y"), "--box", "1,2"])
    assert res.exit_code != 0 and "--box" in res.output


def test_demo_writes_raw_folder_expands_it_and_previews(tiny_pig_dir, tmp_path):
    res = CliRunner().invoke(main, ["demo", "--generator", str(tiny_pig_dir), "--out", str(tmp_path), "-n", "8",
                                    "--steps", "2"])
    assert res.exit_code == 0, res.output
    raw = tmp_path / "Dataset999_SynthaugDemo"
    # one line on stdout (the thread count goes to stderr): what was made, where, and how to undo it
    assert res.stdout.count("\n") == 1 and ": 8 pig cases as an nnU-Net raw folder, expanded with 2 more at ratio 0.25" \
        in res.stdout, res.stdout  # the generator by name, not by its folder
    assert f"{tmp_path / 'preview.png'}" in res.stdout and f"synthaug revert {raw}" in res.stdout
    assert json.loads((raw / "dataset.json").read_text(encoding="utf-8"))["numTraining"] == 8 + 2  # round(0.25 * 8)
    assert len(list((raw / "imagesTr").glob("*.png"))) == 10 and (tmp_path / "preview.png").is_file()
    # a class-conditional checkpoint gets tumour types drawn from the real metadata
    cases = json.loads((raw / "synthaug_manifest.json").read_text(encoding="utf-8"))["cases"]
    assert {c["conditions"]["label"] for c in cases.values()} <= {"benign", "malignant"}
    before = {p.name: sha256_file(p) for p in (raw / "imagesTr").glob("DEMO_*")}
    assert CliRunner().invoke(main, ["revert", str(raw)]).exit_code == 0
    assert {p.name: sha256_file(p) for p in (raw / "imagesTr").glob("*")} == before


def test_generators_lists_pig():
    res = CliRunner().invoke(main, ["generators"])
    assert res.exit_code == 0
    assert "pig" in [line.split()[0] for line in res.output.splitlines() if line.strip()]
