"""Latent PIG (issue 16): the tiny latent recipe trains on the shipped VAE's 32 x 32 latents, exports
along the way, resumes, and its checkpoint samples 128 px (image, mask) pairs through create_generator."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synthaug import Condition, SynthaugError, create_generator
from synthaug.data.datasets import PairDataset
from synthaug.training.loop import train
from synthaug.training.objectives import create_objective
from synthaug.training.recipes import load_recipe, train_config


@pytest.fixture(scope="module")
def cases():
    rng = np.random.default_rng(0)
    recs = []
    for i in range(6):
        mask = np.zeros((128, 128), bool)
        mask[30 + 4 * i:70 + 2 * i, 40:90] = True
        img = rng.integers(40, 120, (128, 128), dtype=np.uint8)
        img[mask] //= 3
        recs.append((img, mask, ("benign", "malignant")[i % 2], f"c{i}"))
    return PairDataset(recs)


@pytest.fixture(scope="module")
def run(cases, tmp_path_factory):
    recipe = load_recipe("pig", "latent-tiny")
    out = tmp_path_factory.mktemp("latent_pig")
    final = train(create_objective("pig", recipe["model"]), cases, train_config(recipe), out, progress=False)
    return recipe, out, final


def test_trains_on_latents_and_exports_along_the_way(run):
    recipe, out, final = run
    info = json.loads((final / "synthaug.json").read_text(encoding="utf-8"))
    assert info["latent"] and info["latent_size"] == 32 and info["steps"] == 4
    assert (final / "vae" / "config.json").is_file()  # the frozen VAE ships inside the checkpoint
    assert sorted(p.name for p in (out / "exports").iterdir()) == ["step_2", "step_4"]
    assert all(np.isfinite(json.loads(line)["loss"]) for line in (out / "log.jsonl").read_text().splitlines())


def test_latent_checkpoint_samples_128px_pairs(run):
    _, out, final = run
    gen = create_generator(out / "exports" / "step_2")
    assert gen.conditions == {"label"} and gen.pipe.model_x.config.sample_size == 32
    assert gen.pipe.model_y.config.in_channels == 5 and gen.pipe.model_y.config.out_channels == 4
    pairs = gen.sample(3, seed=3, conditions=[Condition("benign"), Condition("malignant"), None], batch_size=2)
    for p in pairs:
        assert p.image.shape == p.mask.shape == (128, 128) and p.image.dtype == np.uint8
        assert set(np.unique(p.mask)) <= {0, 1}
    again = create_generator(final).sample(seeds=[pairs[1].meta["seed"]], conditions=[Condition("malignant")])[0]
    assert again.image.shape == (128, 128)


def test_rerun_resumes_and_continues_the_exports(run, cases):
    recipe, out, _ = run
    cfg = train_config(recipe, steps=6)
    final = train(create_objective("pig", recipe["model"]), cases, cfg, out, progress=False)
    assert json.loads((final / "synthaug.json").read_text(encoding="utf-8"))["steps"] == 6
    assert (out / "exports" / "step_6").is_dir()
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # steps 1-4 were not trained again


def test_cpu_profile_checkpoint_stays_git_sized(tmp_path):
    """Two 4.3M U-Nets and the VAE in fp16: the exported folder stays under 25 MB."""
    objective = create_objective("pig", load_recipe("pig", "latent-cpu-128")["model"])
    folder = objective.export(objective.models, tmp_path / "ckpt", {})
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert size < 25e6, size
    assert {p.name for p in folder.iterdir()} >= {"model_x", "model_y", "vae", "scheduler", "model_index.json"}


def test_latent_needs_a_vae_and_has_no_image_only_baseline():
    with pytest.raises(SynthaugError, match="model.vae"):
        create_objective("pig", {"latent": True})
    with pytest.raises(SynthaugError, match="image-only"):
        create_objective("ddpm-image", {"latent": True, "vae": "checkpoints/vae-busi-128"})


@pytest.mark.parametrize("p, empty", [(1.0, True), (0.0, False)])
def test_mask_dropout_shows_model_y_the_empty_mask(cases, p, empty):
    """mask_dropout trains the "no lesion" condition that mask guidance contrasts against."""
    recipe = load_recipe("pig", "latent-tiny")
    assert recipe["model"]["mask_dropout"] == 0.1
    objective = create_objective("pig", {**recipe["model"], "mask_dropout": p, "guider_cond_prob": 0.0})
    objective.prepare(cases)
    models, seen = objective.trainable(), []
    models["model_y"].register_forward_pre_hook(lambda m, args: seen.append(args[0][:, :1].clone()))
    batch = torch.utils.data.default_collate([cases[i] for i in range(4)])
    objective.loss(batch, models)
    assert bool((seen[0] == -1).all()) == empty
    assert objective.info["mask_dropout"] == p
