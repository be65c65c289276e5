"""Option validation (issue 13, item 5): sampler steps >= 1 with "default" recorded as the checkpoint's
number, devices checked up front by one helper, SyntheticMix's ratio capped as expand's."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from synthaug.cli import main
from synthaug.data import PairDataset
from synthaug.mix import SyntheticMix
from synthaug.errors import SynthaugError
from synthaug.expand import MAX_RATIO, GeneratorRef, expand, revert
from synthaug.pipelines.base import GENERATOR_INFO, check_device, check_steps
from synthaug.pipelines.registry import create_generator
from synthaug.sampling import sample_to_folder

from test_expand import make_raw, manifest, snapshot


@pytest.fixture
def raw(tmp_path) -> Path:
    return make_raw(tmp_path)


@pytest.fixture
def gen20(tiny_generator_dir, tmp_path) -> str:
    """The tiny test generator with a checkpoint default of 20 sampler steps."""
    folder = Path(shutil.copytree(tiny_generator_dir, tmp_path / "tiny20"))
    data = json.loads((folder / GENERATOR_INFO).read_text())
    (folder / GENERATOR_INFO).write_text(json.dumps({**data, "default_steps": 20}))
    return str(folder)


def one_line_error(result, *needles: str) -> str:
    text = result.output.strip()
    assert result.exit_code == 2 and "Traceback" not in text, text
    for needle in needles:
        assert needle in text, text
    return text


# ----------------------------------------------------------------------------- steps
@pytest.mark.parametrize("steps", [-5, 0, 2.5, True, "20"])
def test_bad_steps_are_refused_everywhere(raw, gen20, tmp_path, steps):
    before = snapshot(raw)
    with pytest.raises(SynthaugError, match="steps must be an integer >= 1"):
        check_steps(steps)
    with pytest.raises(SynthaugError, match="steps must be"):
        expand(raw, 0.5, generator=gen20, steps=steps)
    with pytest.raises(SynthaugError, match="steps must be"):
        create_generator("pig", steps=steps)
    with pytest.raises(SynthaugError, match="steps must be"):
        sample_to_folder(gen20, 2, tmp_path / "out", steps=steps)
    assert snapshot(raw) == before


@pytest.mark.parametrize("command", ["expand", "sample", "demo"])
@pytest.mark.parametrize("steps", ["-5", "0"])
def test_cli_refuses_steps_below_one(raw, tmp_path, command, steps):
    args = {"expand": ["expand", str(raw), "--ratio", "0.5"], "sample": ["sample", "--out", str(tmp_path / "o")],
            "demo": ["demo", "--out", str(tmp_path / "o")]}[command]
    one_line_error(CliRunner().invoke(main, args + ["--steps", steps]), "--steps", steps, ">=1")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["sample", "masks", "demo", "calibrate"])
def test_cli_refuses_a_count_below_one(tmp_path, command):
    args = ["calibrate", str(tmp_path)] if command == "calibrate" else [command]
    args += ["--out", str(tmp_path / "o")]
    one_line_error(CliRunner().invoke(main, args + ["-n", "0"]), "-n", "0", ">=1")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("n", [0, -1, 2.0, True])
def test_sample_to_folder_refuses_a_bad_count_before_writing(gen20, tmp_path, n):
    with pytest.raises(SynthaugError, match="number of pairs must be an integer >= 1"):
        sample_to_folder(gen20, n, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_default_steps_are_recorded_as_the_checkpoint_number(raw, gen20, tiny_generator_dir):
    assert GeneratorRef.resolve(gen20, None).identity["steps"] == 20
    assert GeneratorRef.resolve(str(tiny_generator_dir), None).identity["steps"] is None  # no sampler, no default
    assert GeneratorRef.resolve("bus", None).identity["steps"] == 20  # the shipped checkpoint's default_steps
    expand(raw, 0.5, generator=gen20)
    assert manifest(raw)["generator"]["steps"] == 20
    assert expand(raw, 0.5, generator=gen20, steps=20)["added"] == 0  # the default, said explicitly
    with pytest.raises(SynthaugError, match="different generator/checkpoint/steps"):
        expand(raw, 0.5, generator=gen20, steps=8)
    revert(raw)
    expand(raw, 0.5, generator=gen20, steps=20)
    assert expand(raw, 0.5, generator=gen20)["added"] == 0  # and the other way round


def test_generators_use_the_steps_asked_or_their_default():
    assert create_generator("pig").steps == 20  # pig-busi-128's synthaug.json default
    assert create_generator("pig", steps=3).steps == 3


# ----------------------------------------------------------------------------- devices
def test_unknown_device_lists_the_valid_choices():
    for device in ("tpu9", "gpu", "", "cuda:x"):
        with pytest.raises(SynthaugError, match=r"unknown device .*valid choices: cpu, cuda, cuda:N, mps"):
            check_device(device)
    assert check_device("cpu") == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error():
    for device in ("cuda", "cuda:0"):
        with pytest.raises(SynthaugError, match=r"use --device cpu \(available here: cpu\)"):
            check_device(device)


@pytest.mark.parametrize("device", ["tpu9", "cuda"])
@pytest.mark.parametrize("command", ["expand", "sample", "demo", "masks"])
def test_every_generating_command_checks_the_device_first(raw, tmp_path, command, device):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("needs a machine without a GPU")
    before = snapshot(raw)
    args = {"expand": ["expand", str(raw), "--ratio", "0.5"], "sample": ["sample", "--out", str(tmp_path / "o")],
            "demo": ["demo", "--out", str(tmp_path / "o")], "masks": ["masks", "--out", str(tmp_path / "o")]}[command]
    one_line_error(CliRunner().invoke(main, args + ["--device", device]), "--device", device, "available here: cpu")
    assert snapshot(raw) == before and not (tmp_path / "o").exists()


def test_library_calls_check_the_device_before_loading_or_writing(raw, gen20, tmp_path):
    before = snapshot(raw)
    with pytest.raises(SynthaugError, match="unknown device 'tpu9'"):
        create_generator("bus", device="tpu9")
    with pytest.raises(SynthaugError, match="unknown device 'tpu9'"):
        expand(raw, 0.5, generator=gen20, device="tpu9")
    with pytest.raises(SynthaugError, match="unknown device 'tpu9'"):
        sample_to_folder(gen20, 2, tmp_path / "out", device="tpu9")
    assert snapshot(raw) == before and not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- SyntheticMix ratio
@pytest.mark.parametrize("ratio", [1e9, math.inf, math.nan, MAX_RATIO + 0.5, -1.0, 0, True])
def test_mix_ratio_is_capped_like_expand(raw, tiny_generator_dir, ratio):
    real = PairDataset.from_raw(raw)
    gen = create_generator(tiny_generator_dir)
    with pytest.raises(SynthaugError, match=rf"ratio must be in \(0, {MAX_RATIO}\]"):
        SyntheticMix(real, gen, ratio=ratio)


def test_mix_accepts_the_cap(raw, tiny_generator_dir):
    mix = SyntheticMix(PairDataset.from_raw(raw), create_generator(tiny_generator_dir), ratio=MAX_RATIO)
    assert len(mix) == 6 + 60
