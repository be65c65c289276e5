"""PIG on a tiny randomly initialised model: plumbing, determinism, save/load, schedulers."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synthaug import Condition, SynthaugError, create_generator
from synthaug.pipelines.pig import predict_x0
from synthaug.pipelines.schedulers import training_scheduler

def test_checkpoint_is_fp16_diffusers_layout(tiny_pig_dir):
    from safetensors import safe_open

    for sub in ("model_x", "model_y"):
        with safe_open(str(tiny_pig_dir / sub / "diffusion_pytorch_model.safetensors"), "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    assert json.loads((tiny_pig_dir / "model_index.json").read_text(encoding="utf-8"))["_class_name"] == "PIGPipeline"


def test_pairs_are_binary_uint8_at_output_size_and_reproducible_per_seed(tiny_pig_dir):
    gen = create_generator(tiny_pig_dir)
    assert gen.conditions == {"label"}
    pairs = gen.sample(3, seed=7, conditions=[Condition("benign"), Condition("malignant"), None], batch_size=2)
    assert [p.image.shape for p in pairs] == [(32, 32)] * 3
    for p in pairs:
        assert p.image.dtype == np.uint8 and set(np.unique(p.mask)) <= {0, 1}
    # the same seed alone, in another batch, gives the same pair
    again = gen.sample(seeds=[pairs[2].meta["seed"]])[0]
    assert np.array_equal(again.image, pairs[2].image) and np.array_equal(again.mask, pairs[2].mask)
    assert pairs[0].meta["label"] == "benign" and pairs[1].meta["label"] == "malignant"


def test_label_changes_the_sample(tiny_pig_dir):
    gen = create_generator(tiny_pig_dir)
    b = gen.sample(seeds=[1], conditions=[Condition("benign")])[0]
    m = gen.sample(seeds=[1], conditions=[Condition("malignant")])[0]
    assert not np.array_equal(b.image, m.image)


@pytest.mark.parametrize("scheduler", ["ddim", "dpm++", "unipc"])
def test_schedulers_step_both_chains(tiny_pig_dir, scheduler):
    gen = create_generator(tiny_pig_dir, scheduler=scheduler, steps=3)
    pair = gen.sample(1, seed=0)[0]
    assert pair.meta["scheduler"] == scheduler and pair.image.shape == (32, 32)


def test_unknown_scheduler_is_a_clear_error(tiny_pig_dir):
    with pytest.raises(SynthaugError, match="unknown scheduler"):
        create_generator(tiny_pig_dir, scheduler="euler-x").sample(1)


def test_predict_x0_inverts_add_noise():
    sched = training_scheduler()
    x0 = torch.rand(2, 1, 4, 4) * 2 - 1
    eps = torch.randn_like(x0)
    t = torch.tensor([10, 500])
    xt = sched.add_noise(x0, eps, t)
    assert torch.allclose(predict_x0(xt, eps, sched.alphas_cumprod[t]), x0, atol=1e-4)


def test_missing_component_is_reported(tiny_pig_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_pig_dir, broken)
    shutil.rmtree(broken / "model_y")
    with pytest.raises(SynthaugError, match="missing model_y"):
        create_generator(broken)
