"""pig_latent_curve.py --ship: an export becomes the shipped checkpoint with its default mask guidance,
the BUSI train case ids, and a card that keeps the replaced checkpoint's text (needs SYNTHAUG_DATA)."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.pig_latent_curve import guidance_options, ship  # noqa: E402
from synthaug import create_generator  # noqa: E402
from synthaug.pipelines.base import verify_checkpoint  # noqa: E402


def row(w: float, dice: float) -> dict:
    return {"train_steps": 40, "options": {"mask_guidance": w} if w else {}, "frechet_distance": 150.0,
            "kernel_distance": 0.2, "pairs_per_second": 1.0, "dice_real_segmenter_on_generated": {"mean": dice},
            "area": {"mean": 0.12}, "area_real": {"mean": 0.098}}


def test_ship_swaps_in_a_complete_checkpoint_and_keeps_the_old_card(tiny_pig_dir, tmp_path, busi_root):
    export = Path(shutil.copytree(tiny_pig_dir, tmp_path / "exports" / "step_40"))
    info = json.loads((export / "synthaug.json").read_text(encoding="utf-8"))
    (export / "synthaug.json").write_text(json.dumps({**info, "steps": 40, "mixed_precision": "no"}), encoding="utf-8")
    dest = Path(shutil.copytree(tiny_pig_dir, tmp_path / "pig-busi-128"))
    (dest / "README.md").write_text("# pig-busi-128\n\n- old numbers: Dice 0.224\n\n## Metrics\n{}\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="no measurement at mask guidance 3"):
        ship(export, dest, 3.0, [row(0, 0.4), row(2, 0.71)], {}, "note")
    bus = {"dice": 0.93, "area": 0.129, "area_real": 0.111, "fd": 160.2, "kid": 0.227}
    ship(export, dest, 2.0, [row(0, 0.4), row(2, 0.71)], {"bus": bus}, "Chosen: the smallest w reaching 0.70.",
         "pig_latent_curve_20k")
    verify_checkpoint(dest)  # file hashes current after the edits
    shipped = json.loads((dest / "synthaug.json").read_text(encoding="utf-8"))
    assert shipped["default_mask_guidance"] == 2.0 and shipped["training_data"]["n_cases"] == 518
    assert create_generator(dest).mask_guidance == 2.0
    # the curve measures 'no guidance' on such a checkpoint (or an export continued from it) explicitly
    assert create_generator(dest, **guidance_options(0)).mask_guidance == 0.0
    card = (dest / "README.md").read_text(encoding="utf-8")
    assert card.startswith("# pig-busi-128\n") and "| 2 (default) | 0.710 |" in card and "old numbers: Dice 0.224" in card and "smallest w" in card
    # the card names the report it quotes, the references with their real area, and float32 steps as such
    assert "(benchmarks/results/pig_latent_curve_20k.md)" in card and "| bus | 0.930 | 0.129 (0.111) | 160.2 |" in card
    assert "- steps: 40 at batch" in card and ", float32, EMA" in card and "no autocast" not in card
    assert not any(p.name.endswith((".new", ".old")) for p in tmp_path.iterdir())
