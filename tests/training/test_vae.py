"""The BUS generator's AutoencoderKL: trains in the one loop, exports with its latent scale,
and starts from a local pretrained VAE (here a 3-channel one this test saves, like an SD vae/ folder)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synthaug.data.datasets import PairDataset
from synthaug.training.loop import TrainConfig, train
from synthaug.training.objectives import create_objective
from synthaug.training.objectives.vae import from_vae, load_vae, small_vae, to_vae

TINY = dict(resolution=32, vae=dict(block_out_channels=[8, 16], latent_channels=4, norm_num_groups=4))


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return PairDataset([(rng.integers(0, 255, (32, 32), dtype=np.uint8), np.zeros((32, 32), bool), "benign", f"c{i}")
                        for i in range(6)])


def test_vae_trains_exports_and_reloads(images, tmp_path):
    cfg = TrainConfig(steps=3, batch_size=3, warmup_steps=1, save_every=1000, log_every=1, ema_decay=None)
    final = train(create_objective("vae", TINY), images, cfg, tmp_path)
    log = [json.loads(l) for l in (tmp_path / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {"l1", "kl"} <= set(log[0])
    vae = load_vae(final)
    info = json.loads((final / "synthaug.json").read_text(encoding="utf-8"))
    assert info["generator"] == "vae" and vae.config.scaling_factor == pytest.approx(info["scaling_factor"])
    assert vae.config.scaling_factor != 0.18215  # measured on the data, not the SD default
    with torch.no_grad():
        z = vae.encode(torch.zeros(1, 1, 32, 32)).latent_dist.mean
    assert z.shape == (1, 4, 16, 16)


def test_init_from_a_local_three_channel_vae(images, tmp_path):
    torch.manual_seed(0)
    pretrained = small_vae(32, (8, 16), norm_num_groups=4, in_channels=3)
    pretrained.save_pretrained(str(tmp_path / "sd" / "vae"))
    obj = create_objective("vae", TINY)
    obj.init_from(tmp_path / "sd")
    vae = obj.models["vae"]
    assert vae.config.in_channels == 3
    assert torch.equal(vae.encoder.conv_in.weight, pretrained.encoder.conv_in.weight)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    assert to_vae(x, vae).shape == (2, 3, 32, 32) and from_vae(to_vae(x, vae)).shape == x.shape
    loss, _ = obj.loss({"image": (x + 1) / 2}, obj.models)
    assert torch.isfinite(loss)


def test_crop_training_sees_windows_and_the_vae_codes_whole_images(images, tmp_path):
    from synthaug.errors import SynthaugError
    from synthaug.training.objectives.vae import random_crops, reconstruct

    x = torch.arange(2 * 32 * 32, dtype=torch.float32).view(2, 1, 32, 32)
    crops = random_crops(x, 16)
    assert crops.shape == (2, 1, 16, 16)
    for c, full in zip(crops, x):  # each window is a contiguous block of its own image
        y, x0 = divmod(int(c[0, 0, 0] - full[0, 0, 0]), 32)
        assert torch.equal(c, full[:, y:y + 16, x0:x0 + 16])
    obj = create_objective("vae", {**TINY, "crop": 16})
    seen = []
    obj.models["vae"].encoder.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape))
    obj.loss({"image": torch.rand(3, 1, 32, 32)}, obj.models)
    assert seen[-1][-2:] == (16, 16)
    rec = reconstruct(obj.models["vae"], torch.rand(2, 1, 32, 32) * 2 - 1)
    assert rec.shape == (2, 1, 32, 32) and rec.abs().max() <= 1
    with pytest.raises(SynthaugError, match="crop"):
        create_objective("vae", {**TINY, "crop": 40})
