"""The one training loop: trains, logs, resumes from its state, exports a loadable checkpoint."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from synthaug import create_generator
from synthaug.data.datasets import PairDataset
from synthaug.errors import SynthaugError
from synthaug.training.loop import TrainConfig, train
from synthaug.training.objectives import create_objective
from synthaug.training.recipes import list_recipes, load_recipe, train_config

TINY_MODEL = dict(resolution=16, output_size=32, unet=dict(block_out_channels=[8, 16], attention_levels=[1], norm_num_groups=4),
                  default_steps=3)


def test_train_resume_export(tiny_pairs, tmp_path):
    cfg = TrainConfig(steps=4, batch_size=4, save_every=2, log_every=2, warmup_steps=1)
    final = train(create_objective("pig", TINY_MODEL), tiny_pairs, cfg, tmp_path)
    assert (tmp_path / "states" / "step_4").is_dir()
    cfg.steps = 6
    final = train(create_objective("pig", TINY_MODEL), tiny_pairs, cfg, tmp_path)  # resumes at step 4
    steps = [json.loads(l)["step"] for l in (tmp_path / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert steps == [2, 4, 6]  # no step repeated: the second run continued from the saved state
    info = json.loads((final / "synthaug.json").read_text(encoding="utf-8"))
    assert info["generator"] == "pig" and info["steps"] == 6
    pair = create_generator(final).sample(1, seed=0)[0]
    assert pair.image.shape == (32, 32)


def test_loss_goes_down_on_a_fixed_batch(tiny_pairs, tmp_path):
    """The PIG objective learns: 60 steps on 8 cases lower both chains' loss."""
    cfg = TrainConfig(steps=60, batch_size=8, lr=3e-3, warmup_steps=1, log_every=10, save_every=1000,
                      ema_decay=None, mixed_precision="no")
    train(create_objective("pig", TINY_MODEL), tiny_pairs, cfg, tmp_path)
    log = [json.loads(l) for l in (tmp_path / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert log[-1]["loss"] < 0.8 * log[0]["loss"]


def test_image_only_baseline_exports_a_ddim_pipeline(tiny_pairs, tmp_path):
    from diffusers import DDIMPipeline

    cfg = TrainConfig(steps=2, batch_size=4, warmup_steps=1, save_every=1000)
    final = train(create_objective("ddpm-image", {**TINY_MODEL, "class_conditional": False}), tiny_pairs, cfg, tmp_path)
    pipe = DDIMPipeline.from_pretrained(str(final))
    out = pipe(batch_size=1, num_inference_steps=2, output_type="np").images
    assert out.shape == (1, 16, 16, 1)

    # the Table 1 benchmark samples it with any scheduler, per-image seeds, at the output size
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from benchmarks.pig_quality import baseline_images

    images, _ = baseline_images(final, "dpm++", 3, 3, seed=0, batch_size=2)
    again, _ = baseline_images(final, "dpm++", 3, 3, seed=0, batch_size=3)
    assert len(images) == 3 and images[0].shape == (32, 32) and images[0].dtype == np.uint8
    # per-image seeds: the same images whatever the batching (bf16 kernels may differ by a grey level)
    assert all(np.abs(a.astype(int) - b).max() <= 2 for a, b in zip(images, again))


def test_recipes_load_and_reject_unknown_settings():
    assert {"pig-cpu-128", "pig-paper", "ddpm-image-cpu-128"} <= set(list_recipes())
    recipe = load_recipe("pig", "cpu-128")
    assert train_config(recipe, steps=5).steps == 5
    with pytest.raises(SynthaugError, match="unknown train settings"):
        train_config({**recipe, "train": {**recipe["train"], "stepz": 1}})
    with pytest.raises(SynthaugError, match="no recipe"):
        load_recipe("pig", "gpu-9000")
    for name in list_recipes():  # every shipped recipe parses into a valid train config
        kind, profile = re.fullmatch(r"(.+)-(cpu-128|paper|tiny)", name).groups()
        assert train_config(load_recipe(kind, profile)).steps > 0


def test_init_from_an_exported_checkpoint_restores_its_weights(tiny_pairs, tmp_path):
    cfg = TrainConfig(steps=2, batch_size=4, warmup_steps=1, save_every=1000, ema_decay=None)
    final = train(create_objective("pig", TINY_MODEL), tiny_pairs, cfg, tmp_path / "a")
    fresh = create_objective("pig", TINY_MODEL)
    saved = create_generator(final).pipe.model_x.state_dict()
    assert not torch.equal(fresh.models["model_x"].state_dict()["conv_in.weight"], saved["conv_in.weight"])
    fresh.init_from(final)
    got = fresh.models["model_x"].state_dict()["conv_in.weight"]
    assert torch.allclose(got, saved["conv_in.weight"].float())  # fp16 on disk, fp32 in memory


def test_a_continued_run_exports_its_total_steps_and_time(tiny_pairs, tmp_path):
    from synthaug.training.cards import write_train_card
    from synthaug.training.run import starting_point

    cfg = TrainConfig(steps=3, batch_size=4, warmup_steps=1, save_every=1000, ema_decay=None)
    first = train(create_objective("pig", TINY_MODEL), tiny_pairs, cfg, tmp_path / "a")
    before = json.loads((first / "synthaug.json").read_text(encoding="utf-8"))
    more = create_objective("pig", TINY_MODEL)
    more.init_from(first)
    cfg.steps = 2
    final = train(more, tiny_pairs, cfg, tmp_path / "b", start=starting_point(first))
    info = json.loads((final / "synthaug.json").read_text(encoding="utf-8"))
    assert (info["steps"], info["steps_this_run"], info["init_from"]) == (5, 2, str(first))
    assert info["train_minutes"] >= before["train_minutes"]
    card = write_train_card(final, {"objective": "pig", "name": "pig-tiny", "model": TINY_MODEL}, "tiny", 8)
    assert f"continued from `{first}`: 3 steps before, 2 in this run" in card.read_text(encoding="utf-8")
    assert starting_point(tmp_path)["steps"] == 0  # weights from elsewhere: nothing to add


def test_recipe_overrides_by_set():
    from synthaug.training.recipes import apply_overrides

    recipe = apply_overrides(load_recipe("scmg", "cpu-128"), ["model.curvature_weight=0", "train.steps=7",
                                                              "model.generator.spade_hidden=8"])
    assert recipe["model"]["curvature_weight"] == 0 and recipe["model"]["generator"]["spade_hidden"] == 8
    assert train_config(recipe).steps == 7
    with pytest.raises(SynthaugError, match="SECTION.KEY=VALUE"):
        apply_overrides(recipe, ["curvature_weight=0"])
