"""bf16 only where the hardware runs it: float32 elsewhere, recorded in the engine identity and the exports."""
from __future__ import annotations

import json

import pytest
import torch

from synthaug.errors import SynthaugError
from synthaug.expand import expand
from synthaug.io.manifest import MANIFEST_NAME
from synthaug.pipelines import engines
from synthaug.precision import native_bf16, use_bf16
from synthaug.training.loop import TrainConfig, train
from synthaug.training.objectives import create_objective
from synthaug.training.recipes import apply_overrides, load_recipe, train_config
from test_expand import make_raw

TINY_PIG = dict(resolution=16, output_size=32, unet=dict(block_out_channels=[8, 16], attention_levels=[1],
                                                        norm_num_groups=4))


def test_the_environment_forces_either_way_and_rejects_other_values(monkeypatch):
    monkeypatch.setenv("SYNTHAUG_BF16", "0")
    assert not native_bf16("cpu") and not use_bf16(True) and engines.torch_identity("cpu") == "torch-fp32"
    assert engines.resolve_engine("auto", "cpu", ("torch",)) == "torch-fp32"
    monkeypatch.setenv("SYNTHAUG_BF16", "1")
    assert native_bf16("cpu") and use_bf16(True) and not use_bf16(False)
    assert engines.resolve_engine("torch") == "torch"
    monkeypatch.setenv("SYNTHAUG_BF16", "yes")
    with pytest.raises(SynthaugError, match="SYNTHAUG_BF16 must be 0 or 1"):
        native_bf16("cpu")


def test_detection_follows_the_cpu(monkeypatch):
    monkeypatch.delenv("SYNTHAUG_BF16", raising=False)
    assert native_bf16("cpu") == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def test_training_falls_back_to_float32_and_records_it(tiny_pairs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SYNTHAUG_BF16", "0")
    cfg = TrainConfig(steps=2, batch_size=4, warmup_steps=1, save_every=1000, mixed_precision="bf16")
    final = train(create_objective("pig", TINY_PIG), tiny_pairs, cfg, tmp_path, progress=False)
    assert json.loads((final / "synthaug.json").read_text(encoding="utf-8"))["mixed_precision"] == "no"
    assert "no native bf16 on this cpu: training in float32" in capsys.readouterr().err


def test_a_recipe_may_say_no_and_nothing_unknown():
    recipe = apply_overrides(load_recipe("pig", "tiny"), ["train.mixed_precision=no"])  # YAML reads a bare no as false
    assert train_config(recipe).mixed_precision == "no"
    with pytest.raises(SynthaugError, match="mixed_precision must be no, bf16 or fp16"):
        train_config(apply_overrides(load_recipe("pig", "tiny"), ["train.mixed_precision=fp64"]))


def test_a_bf16_folder_is_not_silently_continued_in_float32(tmp_path, tiny_generator_dir, monkeypatch):
    raw = make_raw(tmp_path, n=6)
    monkeypatch.setenv("SYNTHAUG_BF16", "1")
    expand(raw, ratio=0.5, generator=str(tiny_generator_dir), threads=1)
    before = json.loads((raw / MANIFEST_NAME).read_text())
    assert before["generator"]["engine"] == "torch"
    monkeypatch.setenv("SYNTHAUG_BF16", "0")
    with pytest.raises(SynthaugError, match="torch bf16 kernels, which this CPU does not run natively.*SYNTHAUG_BF16=1"):
        expand(raw, ratio=1.0, generator=str(tiny_generator_dir), threads=1)
    assert json.loads((raw / MANIFEST_NAME).read_text()) == before  # nothing changed
    expand(raw, ratio=1.0, generator=str(tiny_generator_dir), threads=1, allow_engine_change=True)
    m = json.loads((raw / MANIFEST_NAME).read_text())
    assert m["generator"]["engine"] == "torch-fp32" and len(m["cases"]) == 6
    assert m["engine_changes"] == [{"from": "torch", "to": "torch-fp32", "cases_before": 3}]


def test_the_machine_line_names_the_cpu_its_bf16_and_the_threads(monkeypatch):
    from synthaug.precision import cpu_name, machine

    monkeypatch.setenv("SYNTHAUG_BF16", "0")
    line = machine()
    assert cpu_name() and line.startswith(cpu_name()) and "no native bf16" in line and "torch thread" in line
    monkeypatch.setenv("SYNTHAUG_BF16", "1")
    assert ", native bf16" in machine()
