"""BUS generator image half: text-conditioned latent UNet, then a mask ControlNet on the frozen UNet,
both through the one loop on a tiny VAE this test saves."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synthaug.data.datasets import PairDataset
from synthaug.errors import SynthaugError
from synthaug.models.ldm import latent_unet, mask_controlnet
from synthaug.training.loop import TrainConfig, train
from synthaug.training.objectives import create_objective
from synthaug.training.objectives.vae import small_vae

UNET = dict(block_out_channels=[8, 16], cross_attention_levels=[1], attention_head_dim=4, norm_num_groups=4)


@pytest.fixture(scope="module")
def cases():
    rng = np.random.default_rng(0)
    recs = []
    for i in range(6):
        mask = np.zeros((32, 32), bool)
        mask[6:14 + i, 8:20] = True
        recs.append((rng.integers(0, 255, (32, 32), dtype=np.uint8), mask, ("benign", "malignant")[i % 2], f"c{i}"))
    return PairDataset(recs)


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("vae")
    torch.manual_seed(0)
    small_vae(32, (8, 16), norm_num_groups=4).save_pretrained(str(path / "vae"))
    return path


def test_controlnet_hint_encoder_matches_the_latent_grid():
    unet = latent_unet(16, sample_size=8, **UNET)
    cn = mask_controlnet(unet, latent_factor=4)
    down, mid = cn(torch.randn(2, 4, 8, 8), torch.tensor([1, 2]), encoder_hidden_states=torch.randn(2, 5, 16),
                   controlnet_cond=torch.randn(2, 1, 32, 32), return_dict=False)
    assert len(down) > 0 and mid.shape[0] == 2
    with pytest.raises(ValueError):
        mask_controlnet(unet, latent_factor=3)


def test_ldm_then_controlnet_train_and_export(cases, vae_dir, tmp_path):
    cfg = TrainConfig(steps=2, batch_size=3, warmup_steps=1, save_every=1000, log_every=1, ema_decay=None)
    ldm = create_objective("ldm", dict(vae=str(vae_dir), resolution=32, unet=UNET, max_length=12))
    assert ldm.latent_size == 16 and ldm.factor == 2
    final = train(ldm, cases, cfg, tmp_path / "ldm")
    info = json.loads((final / "synthaug.json").read_text(encoding="utf-8"))
    assert info["generator"] == "ldm" and (final / "unet" / "config.json").is_file()
    assert sum(info["prompt_counts"].values()) == len(cases)
    assert all(p.startswith(("benign tumor", "malignant tumor")) for p in info["prompt_counts"])
    assert len(ldm.cache["embeddings"]) == len(info["prompt_counts"]) + 1  # + the empty prompt for CFG

    cn = create_objective("controlnet", dict(vae=str(vae_dir), ldm=str(final), resolution=32, max_length=12,
                                             controlnet=dict(conditioning_channels=(8, 16))))
    frozen = {k: v.clone() for k, v in cn.unet.state_dict().items()}
    final_cn = train(cn, cases, cfg, tmp_path / "cn")
    assert (final_cn / "controlnet" / "config.json").is_file()
    assert all(torch.equal(frozen[k], v) for k, v in cn.unet.state_dict().items())  # the backbone stays frozen

    # the registered "bus" generator from the assembled parts: (type, box) -> mask -> prompt -> image
    from synthaug import Condition, create_generator
    from synthaug.pipelines.bus import assemble_bus
    from tests.training.test_scmg import TINY as SCMG_TINY

    scmg = train(create_objective("scmg", {**SCMG_TINY, "output_size": 32}), cases,
                 TrainConfig(steps=1, batch_size=3, warmup_steps=0, save_every=1000, grad_clip=0.0), tmp_path / "scmg")
    bus = assemble_bus(vae_dir, final, final_cn, scmg, tmp_path / "bus", default_steps=2, control_scale=2.0)
    card = (bus / "README.md").read_text(encoding="utf-8")
    assert "| mask ControlNet |" in card and "- data: the parts do not share" in card  # the test VAE has no record
    gen = create_generator(bus, guidance_scale=2.0)
    assert gen.conditions == {"label", "box"}
    pairs = gen.sample(3, seed=0, conditions=[Condition("malignant", (0.1, 0.2, 0.6, 0.9)), None, Condition("benign")])
    assert [p.image.shape for p in pairs] == [(32, 32)] * 3 and all(set(np.unique(p.mask)) <= {0, 1} for p in pairs)
    assert pairs[0].meta["label"] == "malignant" and pairs[0].meta["box"] == [0.1, 0.2, 0.6, 0.9]
    assert pairs[0].meta["prompt"].startswith("malignant tumor with") and pairs[2].meta["label"] == "benign"
    again = gen.sample(1, seeds=[pairs[1].meta["seed"]])[0]
    assert np.array_equal(again.mask, pairs[1].mask)  # one seed per pair, whatever the batch

    # the paper's ablations: Ours-m (no text) and Ours-t (no mask control)
    seed = [pairs[0].meta["seed"]]
    mask_only = create_generator(bus, ablation="mask-only").sample(1, seeds=seed, conditions=[Condition("malignant")])[0]
    assert mask_only.meta["prompt"] == "" and mask_only.meta["ablation"] == "mask-only"
    text = gen.text(["malignant tumor with irregular borders and heterogeneous internal echogenicity"])
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    square, empty = torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32)
    square[..., 8:24, 8:24] = 1
    kw = dict(num_inference_steps=2, bf16=False)
    assert torch.equal(gen.pipe(square, text, generator=g(), control_scale=0.0, **kw),
                       gen.pipe(empty, text, generator=g(), control_scale=0.0, **kw))  # text-only ignores the mask
    assert not torch.equal(gen.pipe(square, text, generator=g(), **kw), gen.pipe(empty, text, generator=g(), **kw))
    assert create_generator(bus, ablation="text-only").ablation == "text-only"
    assert gen.control_scale == 2.0 and create_generator(bus, control_scale=1.5).control_scale == 1.5

    # a blur of the SCMG masks fitted at assembly becomes the checkpoint's default; a bad value is one line
    smooth = assemble_bus(vae_dir, final, final_cn, scmg, tmp_path / "bus_s", default_steps=2, mask_smoothing="auto")
    fitted = json.loads((smooth / "synthaug.json").read_text(encoding="utf-8"))["mask_smoothing"]
    assert set(fitted) == set(gen.irregular_targets()) and create_generator(smooth).masks.smoothing == fitted
    from click.testing import CliRunner

    from synthaug.cli import main

    res = CliRunner().invoke(main, ["assemble-bus", "--vae", str(vae_dir), "--ldm", str(final), "--controlnet",
                                    str(final_cn), "--scmg", str(scmg), "--out", str(tmp_path / "bus_x"),
                                    "--mask-smoothing", "soft"])
    assert res.exit_code != 0 and "--mask-smoothing" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "bus_x").exists()
    with pytest.raises(SynthaugError, match="ablation"):
        create_generator(bus, ablation="no-text")


def test_latent_recipes_need_their_inputs():
    with pytest.raises(SynthaugError, match="model.vae"):
        create_objective("ldm", {})


def test_lesion_weights_cover_the_lesion_and_its_ring_only():
    from synthaug.training.objectives.ldm import lesion_weights

    mask = torch.zeros(1, 1, 32, 32)
    mask[0, 0, 12:16, 12:16] = 1  # latent cells 3 (factor 4), so the ring is cells 2-4
    w = lesion_weights(mask * 2 - 1, 8, 4.0)  # the hint's [-1, 1] mask channel
    assert w.shape == (1, 1, 8, 8)
    assert (w[0, 0, 2:5, 2:5] == 5).all() and w.sum() == 64 + 4 * 9
    assert (lesion_weights(-torch.ones(1, 1, 32, 32), 8, 4.0) == 1).all()


def test_lesion_weighted_loss_differs_from_the_plain_one_and_refuses_negative_weights(cases, vae_dir):
    kw = dict(vae=str(vae_dir), resolution=32, max_length=12, unet=UNET)
    losses = []
    for weight in (0.0, 50.0):
        torch.manual_seed(0)  # the same network and draws for both weights
        obj = create_objective("ldm", dict(kw, lesion_weight=weight))
        obj.prepare(cases)
        models = obj.trainable()
        batch = {"case_id": [f"c{i}" for i in range(6)], "mask": torch.stack([cases[i]["mask"] for i in range(6)])}
        torch.manual_seed(1)
        losses.append(obj.loss(batch, models)[0].item())
    assert np.isfinite(losses).all() and losses[0] != losses[1]
    with pytest.raises(SynthaugError, match="lesion_weight"):
        create_objective("ldm", dict(kw, lesion_weight=-1))


def test_the_edge_hint_controlnet_trains_exports_its_table_and_samples_each_pairs_sharpness(cases, vae_dir, tmp_path):
    """Issue 34: a third hint channel carries each lesion's boundary sharpness; sampling draws it from the
    training lesions of the pair's type and margin word and records it."""
    from synthaug import create_generator
    from synthaug.pipelines.bus import assemble_bus
    from tests.training.test_scmg import TINY as SCMG_TINY

    cfg = TrainConfig(steps=1, batch_size=3, warmup_steps=0, save_every=1000, log_every=1, ema_decay=None)
    kw = dict(vae=str(vae_dir), resolution=32, max_length=12, prompts="descriptors")
    ldm = train(create_objective("ldm", dict(kw, unet=UNET)), cases, cfg, tmp_path / "ldm")
    with pytest.raises(SynthaugError, match="contrast_control"):
        create_objective("controlnet", dict(kw, ldm=str(ldm), edge_control=True))
    cn = create_objective("controlnet", dict(kw, ldm=str(ldm), contrast_control=True, edge_control=True,
                                             controlnet=dict(conditioning_channels=(8, 16))))
    assert cn.models["controlnet"].config.conditioning_channels == 3
    ramp = create_objective("controlnet", dict(kw, ldm=str(ldm), contrast_control=True, edge_control="ramp",
                                               controlnet=dict(conditioning_channels=(8, 16))))
    assert ramp.models["controlnet"].config.conditioning_channels == 2  # the ramp is drawn in the mask channel
    with pytest.raises(SynthaugError, match="edge_control"):
        create_objective("controlnet", dict(kw, ldm=str(ldm), contrast_control=True, edge_control="blur"))
    final = train(cn, cases, cfg, tmp_path / "cn")
    table = json.loads((final / "synthaug.json").read_text(encoding="utf-8"))["edge_control"]["table"]
    measured = {round(w["sharpness"], 3) for w in (cn.cache["rule"].describe((c["image"][0] * 255).round().numpy(),
                                                                                c["mask"][0].numpy()) for c in cases)}
    assert {v for t in table.values() for vs in t.values() for v in vs} <= measured | {None}
    assert set(table) <= {"benign", "malignant"} and all(set(t) <= {"circumscribed", "indistinct", "irregular"}
                                                          for t in table.values())

    scmg = train(create_objective("scmg", {**SCMG_TINY, "output_size": 32}), cases,
                 TrainConfig(steps=1, batch_size=3, warmup_steps=0, save_every=1000, grad_clip=0.0), tmp_path / "scmg")
    bus = assemble_bus(vae_dir, ldm, final, scmg, tmp_path / "bus", default_steps=2, edge_gain=2.0)
    gen = create_generator(bus)
    c = gen.sharpness_centre
    assert gen.edge_gain == 2.0 and gen.hint_sharpness([c + 0.1, c]) == [pytest.approx(c + 0.2), c]
    assert create_generator(bus, edge_gain=1.0).hint_sharpness([0.3]) == [0.3]
    with pytest.raises(SynthaugError, match="edge_gain"):
        create_generator(bus, edge_gain=0)
    word = next(iter(next(iter(table.values()))))  # a margin word some training lesion had
    pairs = gen.with_descriptors({"margin": {word: 1}}).sample(3, seed=0)
    for p in pairs:
        assert p.meta["descriptors"]["margin"] == word
        pool = table.get(p.meta["label"], {}).get(word) or [v for t in table.values() for v in t.get(word, [])]
        assert p.meta["sharpness_requested"] in pool
    plain = train(create_objective("controlnet", dict(kw, ldm=str(ldm), contrast_control=True,
                                                      controlnet=dict(conditioning_channels=(8, 16)))),
                  cases, cfg, tmp_path / "cn0")  # the contrast hint only
    with pytest.raises(SynthaugError, match="edge hint"):
        create_generator(assemble_bus(vae_dir, ldm, plain, scmg, tmp_path / "b0", default_steps=2), edge_gain=2.0)
    ramp_final = train(ramp, cases, cfg, tmp_path / "cn_ramp")
    ramp_gen = create_generator(assemble_bus(vae_dir, ldm, ramp_final, scmg, tmp_path / "b_ramp", default_steps=2))
    assert ramp_gen.edge_hint == "ramp" and gen.edge_hint == "band"
    assert all(0 <= p.meta["sharpness_requested"] for p in ramp_gen.sample(2, seed=0))  # a 2-channel hint runs
