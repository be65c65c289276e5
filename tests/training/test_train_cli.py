"""`synthaug train` end to end on a tiny recipe: checkpoint, model card, training-data provenance."""
from __future__ import annotations

import json

import numpy as np
import yaml
from click.testing import CliRunner

from synthaug import create_generator
from synthaug.cli import main
from synthaug.io.public_sets import write_raw_dataset


def test_train_cli_writes_card_and_provenance(tmp_path):
    rng = np.random.default_rng(0)
    cases = []
    for i in range(6):
        mask = np.zeros((32, 32), bool)
        mask[5:15 + i, 8:20] = True
        cases.append({"case_id": f"C_{i:03d}", "image": rng.integers(0, 255, (32, 32), dtype=np.uint8), "mask": mask,
                      "label": ("benign", "malignant")[i % 2], "split": "train"})
    raw = write_raw_dataset(cases, tmp_path / "raw", 5, "Tiny", source="test")
    recipe = {"objective": "pig", "data": {"size": 32},
              "model": {"resolution": 16, "output_size": 32, "default_steps": 2,
                        "unet": {"block_out_channels": [8, 16], "attention_levels": [1], "norm_num_groups": 4}},
              "train": {"steps": 2, "batch_size": 3, "save_every": 100, "warmup_steps": 1}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(recipe))
    res = CliRunner().invoke(main, ["train", "pig", "--data", str(raw), "--profile", str(tmp_path / "tiny.yaml"),
                                    "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    final = tmp_path / "run" / "final"
    info = json.loads((final / "synthaug.json").read_text(encoding="utf-8"))
    assert info["training_data"]["n_cases"] == 6 and info["training_data"]["case_ids"][0] == "C_000"
    card = (final / "README.md").read_text(encoding="utf-8")
    assert "6 training cases" in card and "steps: 2" in card
    assert create_generator(final).sample(1)[0].image.shape == (32, 32)


def test_train_cli_rejects_unknown_profile_and_data(tmp_path):
    res = CliRunner().invoke(main, ["train", "pig", "--profile", "nope", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "no recipe" in res.output
    res = CliRunner().invoke(main, ["train", "pig", "--data", str(tmp_path), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "neither an nnU-Net raw dataset folder nor the BUSI" in res.output
