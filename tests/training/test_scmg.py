"""SCMG: SPADE generator and dual-branch D shapes, GAN steps in the one loop, resume, export, sampling."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synthaug.data.datasets import PairDataset
from synthaug.errors import SynthaugError
from synthaug.geometry import box_iou, mask_boxes
from synthaug.models.scmg import DualBranchDiscriminator, SCMGGenerator, box_maps
from synthaug.models.spade import SPADE
from synthaug.pipelines.base import Condition
from synthaug.pipelines.scmg import ScmgMasks
from synthaug.training.loop import TrainConfig, train
from synthaug.training.objectives import create_objective

TINY = dict(resolution=16, output_size=32, generator=dict(latent_dim=8, class_embed_dim=4, block_out_channels=[8, 8],
                                                           spade_hidden=4),
            discriminator=dict(spatial_channels=[8, 8], frequency_channels=[4, 4]))


@pytest.fixture(scope="module")
def tiny_masks():
    rng = np.random.default_rng(0)
    recs = []
    for i in range(8):
        mask = np.zeros((32, 32), bool)
        y, x = rng.integers(2, 16, 2)
        mask[y:y + 8 + i, x:x + 6 + i] = True
        recs.append((rng.integers(0, 255, (32, 32), dtype=np.uint8), mask, ("benign", "malignant")[i % 2], f"c{i}"))
    return PairDataset(recs)


def test_spade_modulates_by_the_condition_map():
    layer = SPADE(4, 1, hidden=8)
    torch.nn.init.normal_(layer.beta.weight)
    f = torch.randn(1, 4, 8, 8)
    a = layer(f, torch.zeros(1, 1, 16, 16))
    b = layer(f, torch.ones(1, 1, 16, 16))
    assert a.shape == f.shape and not torch.allclose(a, b)


def test_generator_and_discriminator_shapes():
    G = SCMGGenerator(latent_dim=8, block_out_channels=(8, 8, 8), base_size=4, spade_hidden=4)
    boxes = box_maps(torch.tensor([[0.1, 0.2, 0.6, 0.9], [0.0, 0.0, 1.0, 1.0]]), G.sample_size)
    assert G.sample_size == 32 and boxes.shape == (2, 1, 32, 32)
    assert boxes[0, 0].sum() == pytest.approx(0.5 * 0.7 * 32 * 32, abs=32)
    with torch.no_grad():
        m = G(torch.randn(2, 8), torch.tensor([0, 1]), boxes)
    assert m.shape == (2, 1, 32, 32) and 0 <= float(m.min()) and float(m.max()) <= 1
    D = DualBranchDiscriminator(spatial_channels=(8, 8), frequency_channels=(4, 4))
    adv, cls = D(m, boxes)
    assert adv.shape == (2,) and cls.shape == (2, 2)


def test_gan_trains_in_the_loop_resumes_and_samples(tiny_masks, tmp_path):
    cfg = TrainConfig(steps=4, batch_size=4, save_every=2, log_every=2, warmup_steps=0, grad_clip=0.0)
    train(create_objective("scmg", TINY), tiny_masks, cfg, tmp_path)
    cfg.steps = 6
    final = train(create_objective("scmg", TINY), tiny_masks, cfg, tmp_path)  # resumes at step 4
    log = [json.loads(l) for l in (tmp_path / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["step"] for r in log] == [2, 4, 6]
    assert {"loss_D", "loss_G", "d_adv", "d_cls", "g_adv", "g_cur"} <= set(log[-1])
    info = json.loads((final / "synthaug.json").read_text(encoding="utf-8"))
    assert info["generator"] == "scmg" and info["steps"] == 6
    assert info["prior"]["benign"]["n"] == 4 and len(info["prior"]["malignant"]["boxes"]) == 4

    masks = ScmgMasks.from_pretrained(final)
    out, conds = masks.sample(5, seed=1, conditions=[Condition("malignant", (0.1, 0.1, 0.6, 0.6))] + [Condition()] * 4)
    assert out.shape == (5, 32, 32) and set(np.unique(out)) <= {0, 1}
    assert conds[0] == Condition("malignant", (0.1, 0.1, 0.6, 0.6))
    assert all(c.label in ("benign", "malignant") and c.box is not None for c in conds)  # drawn from the priors
    again, _ = masks.sample(5, seed=1, conditions=conds)
    assert np.array_equal(out, again)  # one seed per mask: reproducible

    from click.testing import CliRunner

    from synthaug.cli import main

    res = CliRunner().invoke(main, ["masks", "--checkpoint", str(final), "-n", "3", "--type", "benign",
                                    "--box", "0.2,0.2,0.7,0.6", "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    assert "wrote 3 masks (3 benign) in " in res.output
    meta = json.loads((tmp_path / "m" / "masks.json").read_text(encoding="utf-8"))["masks"]
    assert [m["box"] for m in meta.values()] == [[0.2, 0.2, 0.7, 0.6]] * 3 and (tmp_path / "m" / "preview.png").is_file()
    bad = CliRunner().invoke(main, ["masks", "--checkpoint", str(final), "--box", "0.7,0.2,0.1,0.6", "--out",
                                    str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "x0<x1" in bad.output


def test_curvature_loss_switch_and_bad_data(tiny_masks):
    obj = create_objective("scmg", {**TINY, "curvature_weight": 0.0})
    obj.prepare(tiny_masks)
    batch = {"mask": torch.stack([tiny_masks[i]["mask"] for i in range(4)]), "label": torch.tensor([0, 1, 0, 1])}
    loss, logs = obj.loss(batch, obj.models, "G")
    assert loss.item() == pytest.approx(logs["g_adv"], rel=1e-5)  # the ablation: L_G = L_adv only
    with pytest.raises(SynthaugError, match="lesion masks"):
        obj.loss({"mask": torch.zeros(2, 1, 32, 32), "label": torch.tensor([0, 1])}, obj.models, "D")


def test_generator_learns_to_fill_the_box():
    """A few hundred steps of G alone on 'fill the rectangle' show SPADE can place masks (IoU of boxes)."""
    torch.manual_seed(0)
    G = SCMGGenerator(latent_dim=8, block_out_channels=(16, 8), base_size=4, spade_hidden=8)
    opt = torch.optim.Adam(G.parameters(), lr=3e-3)
    for _ in range(150):
        lo = torch.rand(8, 2) * 0.5
        boxes = torch.cat([lo, lo + 0.25 + torch.rand(8, 2) * 0.25], 1)
        target = box_maps(boxes, 16)
        loss = torch.nn.functional.binary_cross_entropy(G(torch.randn(8, 8), torch.zeros(8, dtype=torch.long), target), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = G(torch.randn(8, 8), torch.zeros(8, dtype=torch.long), box_maps(boxes, 16))
    assert float(box_iou(mask_boxes(out), boxes).median()) > 0.7
