"""Contrast calibration of a contrast-hint bus checkpoint: a calibrated copy, the source untouched."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from synthaug import create_generator
from synthaug.cli import main
from synthaug.errors import SynthaugError
from synthaug.models.descriptors import invert_map
from synthaug.pipelines.bus_calibration import calibrated_checkpoint
from synthaug.pipelines.checkpoint import verify_checkpoint

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"
LW = CHECKPOINTS / "bus-contrast-lw-busi-128"


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    out = tmp_path_factory.mktemp("calib") / "bus-calibrated"
    before = (LW / "synthaug.json").read_bytes()
    calibrated_checkpoint(LW, out, n=48, seed=0, rounds=2, progress=False, steps=2, match_margin=True)
    assert (LW / "synthaug.json").read_bytes() == before  # the source is never touched
    return out


def test_a_calibrated_copy_loads_and_turns_wanted_contrasts_into_hints_through_its_map(calibrated):
    verify_checkpoint(calibrated)  # same weights, fresh hashes
    gen = create_generator(calibrated, steps=2, engine="torch")
    qmap = gen.info["contrast_calibration"]["map"]
    assert gen.contrast_map == qmap and len(qmap["hint"]) >= 3
    rounds = gen.info["contrast_calibration"]["rounds"]
    assert [r["seed"] for r in rounds] == [0, 1]  # the second round sampled anew, through the first map
    assert rounds[0]["measured_q10_q50_q90"] != rounds[1]["measured_q10_q50_q90"]
    assert gen.match_margin  # the setting it was calibrated for is its default
    wanted = [10.0, 57.0, 120.0]
    assert gen.hint_contrasts(wanted) == pytest.approx(invert_map(wanted, qmap))
    pairs = gen.sample(n=2, seed=1)
    assert all("contrast_requested" in p.meta for p in pairs)  # the wanted contrast stays on record
    linear = create_generator(calibrated, steps=2, engine="torch", contrast_gain=2.0)  # explicit: the map is off
    assert linear.contrast_map is None and linear.hint_contrasts([57.0]) != gen.hint_contrasts([57.0])
    card = (calibrated / "README.md").read_text(encoding="utf-8")
    assert card.startswith("# bus-calibrated: `bus-contrast-lw-busi-128` with calibrated")
    assert "quantile map fitted on 48 sampled pairs a round" in card and "Each of its 2 rounds" in card
    assert "\n## bus-contrast-lw-busi-128:" in card and "- data:" in card


def test_calibration_options_that_cannot_hold_are_refused_in_one_line(calibrated, tmp_path):
    with pytest.raises(SynthaugError, match="no contrast calibration"):
        create_generator(LW, steps=2, engine="torch", contrast_calibration=True)
    with pytest.raises(SynthaugError, match="not both"):
        create_generator(calibrated, steps=2, engine="torch", contrast_calibration=True, contrast_offset=-10)
    with pytest.raises(SynthaugError, match="at least 1"):
        calibrated_checkpoint(LW, tmp_path / "z", n=48, rounds=0, steps=2, progress=False)
    assert not (tmp_path / "z").exists()
    with pytest.raises(SynthaugError, match="exists"):
        calibrated_checkpoint(LW, calibrated, n=48, steps=2)
    with pytest.raises(SynthaugError, match="no contrast hint"):
        calibrated_checkpoint(CHECKPOINTS / "bus-desc-busi-128", tmp_path / "x", n=48, steps=2, progress=False)
    assert not (tmp_path / "x").exists()
    result = CliRunner().invoke(main, ["calibrate", str(LW), "--out", str(tmp_path / "y"), "-n", "8"])
    assert result.exit_code != 0 and "at least 64 pairs" in result.output and not (tmp_path / "y").exists()


def test_an_edge_gain_calibrated_for_is_stored_and_named_on_the_card(tmp_path):
    ramp = CHECKPOINTS / "bus-ramp-cal-busi-128"
    calibrated_checkpoint(ramp, tmp_path / "g4", n=48, rounds=1, progress=False, steps=2, edge_gain=4)
    gen = create_generator(tmp_path / "g4", steps=2, engine="torch")
    assert gen.edge_gain == 4.0 and gen.info["edge_gain"] == 4.0
    assert gen.hint_sharpness([gen.sharpness_centre - 0.1]) == pytest.approx([gen.sharpness_centre - 0.4])
    card = (tmp_path / "g4" / "README.md").read_text(encoding="utf-8")
    assert "match margin True, edge gain 4." in card
    assert "Its one round sampled through the source's map; wanted -> made" in card  # a calibrated source
    result = CliRunner().invoke(main, ["calibrate", str(LW), "--out", str(tmp_path / "lw"), "--edge-gain", "2"])
    assert result.exit_code != 0 and "edge_gain needs a bus checkpoint trained with the edge hint" in result.output
    assert not (tmp_path / "lw").exists()
