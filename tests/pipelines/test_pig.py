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


def test_mask_guidance_is_cfg_against_the_empty_mask_and_zero_keeps_the_plain_sampler(tiny_pig_dir):
    """w = 0 is exactly the unguided sampler; w > 0 is eps(empty) + (1 + w)(eps(mask) - eps(empty)),
    batched in one forward pass, and only the image chain's prediction changes."""
    from contextlib import nullcontext

    gen = create_generator(tiny_pig_dir)
    pipe = gen.pipe
    cond, y = torch.rand(2, 1, 16, 16) * 2 - 1, torch.randn(2, 1, 16, 16)
    tt, cls = torch.tensor([900, 900]), torch.tensor([0, 1])
    with torch.no_grad():
        plain = pipe._eps_image(cond, y, tt, cls, 0.0, nullcontext())
        direct = pipe.model_y(torch.cat([cond, y], 1), tt, class_labels=cls).sample
        empty = pipe.model_y(torch.cat([torch.full_like(cond, -1), y], 1), tt, class_labels=cls).sample
        guided = pipe._eps_image(cond, y, tt, cls, 3.0, nullcontext())
    assert torch.equal(plain, direct)
    assert torch.allclose(guided, empty + 4 * (direct - empty), atol=1e-5)
    assert not torch.allclose(guided, direct, atol=1e-3)

    base = gen.sample(seeds=[5], conditions=[Condition("benign")])[0]
    zero = create_generator(tiny_pig_dir, mask_guidance=0.0).sample(seeds=[5], conditions=[Condition("benign")])[0]
    strong = create_generator(tiny_pig_dir, mask_guidance=4.0).sample(seeds=[5], conditions=[Condition("benign")])[0]
    assert np.array_equal(base.image, zero.image) and "mask_guidance" not in base.meta
    assert not np.array_equal(base.image, strong.image) and strong.meta["mask_guidance"] == 4.0


def test_mask_guidance_default_comes_from_the_checkpoint(tiny_pig_dir, tmp_path):
    import shutil

    folder = tmp_path / "guided"
    shutil.copytree(tiny_pig_dir, folder)
    info = json.loads((folder / "synthaug.json").read_text(encoding="utf-8"))
    (folder / "synthaug.json").write_text(json.dumps({**info, "default_mask_guidance": 2.5}), encoding="utf-8")
    assert create_generator(folder).mask_guidance == 2.5
    assert create_generator(folder, mask_guidance=0).mask_guidance == 0.0  # the caller's choice wins
