"""The checkpoints committed under checkpoints/: git-sized safetensors with a model card, and the
default generator (the README's main job) loads by name and makes coherent pairs."""
from __future__ import annotations

import json

import numpy as np
import pytest

from synthaug import Condition, create_generator
from synthaug.io.public_sets import busi_case_splits
from synthaug.paths import DEFAULT_GENERATOR, checkpoints_root

# every checkpoint folder, also the finished parts of a fit stored part by part (checkpoints/own-*-parts)
SHIPPED = sorted(p.parent for p in checkpoints_root().rglob("synthaug.json"))


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.relative_to(checkpoints_root()).as_posix())
def test_each_checkpoint_is_git_sized_safetensors_with_a_card(folder, busi_root):
    files = [f for f in folder.rglob("*") if f.is_file()]
    weights = [f for f in files if f.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt")]
    assert weights and all(f.suffix == ".safetensors" for f in weights)
    assert sum(f.stat().st_size for f in files) <= 25 * 2 ** 20
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "- data:" in card and "train split only" in card
    # What benchmarks check before trusting it: the recorded training case ids are all BUSI train cases.
    trained_on = json.loads((folder / "synthaug.json").read_text(encoding="utf-8"))["training_data"]["case_ids"]
    splits = busi_case_splits(busi_root)
    assert trained_on and all(splits.get(c) == "train" for c in trained_on)


def test_the_default_generator_makes_pairs_where_its_masks_say():
    gen = create_generator(DEFAULT_GENERATOR, steps=10)
    pairs = gen.sample(2, seed=0, conditions=[Condition("malignant", (0.3, 0.3, 0.7, 0.7)), Condition("benign")])
    for p, label in zip(pairs, ("malignant", "benign")):
        assert p.image.shape == p.mask.shape == (128, 128) and p.image.dtype == np.uint8
        assert p.meta["label"] == label and 0 < p.mask.mean() < 0.6
        inside, outside = p.image[p.mask > 0].mean(), p.image[p.mask == 0].mean()
        assert inside < outside - 10  # a hypoechoic (darker) lesion under the mask, as in BUSI


def test_the_shipped_pig_is_latent_mask_guided_and_paints_lesions_under_its_masks():
    """checkpoints/pig-busi-128 (latent PIG): 128 px pairs, guidance on by default, and with it the image
    is darker under the mask (a hypoechoic lesion), more so than without guidance."""
    gen = create_generator("pig")
    assert gen.mask_guidance == 2.0 and gen.pipe.vae is not None
    conds = [Condition("malignant"), Condition("benign")] * 2
    contrast = {}
    for w in (0.0, 2.0):
        pairs = create_generator("pig", mask_guidance=w).sample(4, seed=0, conditions=conds)
        for p in pairs:
            assert p.image.shape == p.mask.shape == (128, 128) and 0 < p.mask.mean() < 0.6
        contrast[w] = np.mean([p.image[p.mask == 0].mean() - p.image[p.mask > 0].mean() for p in pairs])
    assert contrast[2.0] > 10 and contrast[2.0] > contrast[0.0]


def test_loading_a_checkpoint_prints_no_library_progress_bars(capfd):
    """The shipped bus (a diffusers pipeline with a transformers text encoder) loads without their bars."""
    from diffusers.utils import logging as diffusers_logging

    from synthaug import create_generator

    create_generator("bus")
    assert "Loading" not in capfd.readouterr().err
    assert diffusers_logging.is_progress_bar_enabled()  # the library's own setting is put back
