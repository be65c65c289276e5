"""Real-background mode of the bus generator: the repainted pair keeps the real tissue exactly outside
the repaint region, its mask is the new lesion, and every place that makes pairs offers it."""
from __future__ import annotations

import numpy as np
import pytest

from synthaug import create_generator
from synthaug.data.datasets import PairDataset
from synthaug.data.mix import real_backgrounds
from synthaug.mix import SyntheticMix
from synthaug.errors import SynthaugError
from synthaug.io.public_sets import iter_busi
from synthaug.pipelines.base import Condition
from synthaug.pipelines.real_background import (Background, RealBackgroundGenerator, feather, jitter_box,
                                                 repaint_region)


def test_jitter_box_stays_inside_and_near():
    rng = np.random.default_rng(0)
    for box in [(0.1, 0.2, 0.4, 0.5), (0.0, 0.0, 0.99, 0.3), (0.9, 0.9, 1.0, 1.0)]:
        for _ in range(50):
            x0, y0, x1, y1 = jitter_box(box, rng)
            assert 0.02 - 1e-9 <= x0 < x1 <= 0.98 + 1e-9 and 0.02 - 1e-9 <= y0 < y1 <= 0.98 + 1e-9
            assert abs((x0 + x1) / 2 - (box[0] + box[2]) / 2) <= 0.1 + 0.5  # moved, clamped, never wild


def test_region_and_feather():
    old, new = np.zeros((64, 64), bool), np.zeros((64, 64), bool)
    old[10:20, 10:20], new[30:40, 30:45] = True, True
    region = repaint_region(old, new, 4)
    assert region[old].all() and region[new].all() and not region[0, 63]
    alpha = feather(region, new, 4.0)
    assert alpha[~region].max() == 0  # exactly real outside
    assert alpha[new].min() == 1  # exactly generated on the new lesion
    assert 0 < alpha[region & ~new].mean() < 1  # a seam in between


@pytest.fixture(scope="module")
def busi_backgrounds(busi_root):
    rows = []
    for row in iter_busi(busi_root, split="train"):
        if row["label"] in ("benign", "malignant"):
            rows.append(row)
        if len(rows) == 4:
            break
    return PairDataset([(r["image"], r["mask"], r["label"], r["case_id"]) for r in rows])


@pytest.mark.realdata
def test_repaints_real_cases_at_their_own_size(busi_backgrounds):
    bus = create_generator("bus")
    bgs = real_backgrounds(busi_backgrounds)
    gen = RealBackgroundGenerator(bus, bgs)
    pairs = gen.sample(seeds=[11, 12], conditions=[Condition("benign"), Condition("malignant")], batch_size=2)
    by_id = {b.case_id: b for b in bgs}
    for p, label in zip(pairs, ("benign", "malignant")):
        bg = by_id[p.meta["background"]]
        assert p.image.shape == bg.image.shape == p.mask.shape  # native size, not 128 px
        assert p.meta["label"] == label and p.mask.sum() > 0
        h, w = bg.image.shape
        region = repaint_region(bg.mask, p.mask.astype(bool), int(round(6 * max(h, w) / 128)))
        assert np.array_equal(p.image[~region], bg.image[~region])  # the real tissue, byte for byte
        assert not np.array_equal(p.image[region], bg.image[region])  # and something repainted
        # the lesion was moved: the new mask is not the old one
        assert (p.mask.astype(bool) ^ bg.mask).sum() > 0
    again = gen.sample(seeds=[11], conditions=[Condition("benign")], batch_size=1)[0]
    assert again.meta["background"] == pairs[0].meta["background"]  # the background is a function of the seed


@pytest.mark.realdata
def test_synthetic_mix_draws_backgrounds_from_its_real_dataset(busi_backgrounds):
    mix = SyntheticMix(busi_backgrounds, create_generator("bus"), ratio=0.5, background="real")
    ids = {r.case_id for r in busi_backgrounds.records}
    items = [mix[i] for i in range(len(busi_backgrounds), len(mix))]
    assert len(items) == 2 and all(it["synthetic"] for it in items)
    assert {p.meta["background"] for p in mix._pairs} <= ids
    with pytest.raises(SynthaugError, match="background"):
        SyntheticMix(busi_backgrounds, create_generator("bus"), ratio=0.5, background="tissue")


def test_refuses_a_generator_without_a_latent_space(tiny_generator_dir):
    bg = Background("c", np.zeros((32, 32), np.uint8), np.zeros((32, 32), bool))
    with pytest.raises(SynthaugError, match="bus generator"):
        RealBackgroundGenerator(create_generator(tiny_generator_dir), [bg])


@pytest.mark.realdata
def test_a_contrast_hint_checkpoint_repaints_with_each_lesions_drawn_contrast(busi_backgrounds):
    """The contrast-hint ControlNet needs its hint's contrast channel in real-background mode too: the
    contrast drawn for the pair's words, written into the hint with the checkpoint's gain and offset as in
    full-synthetic sampling (and no edge channel, which it lacks)."""
    bus = create_generator("checkpoints/bus-contrast-lw-busi-128", steps=2)
    seen, pipe = {}, bus.pipe

    def recording(*args, **kwargs):
        seen.update(kwargs)
        return pipe(*args, **kwargs)

    bus.pipe = recording
    bus.pipe.unet, bus.pipe.vae = pipe.unet, pipe.vae
    pairs = RealBackgroundGenerator(bus, real_backgrounds(busi_backgrounds)).sample(
        seeds=[11], conditions=[Condition("benign")], batch_size=1)
    assert len(pairs) == 1 and pairs[0].mask.sum() > 0
    table = bus.contrast_table["benign"]
    drawn = (seen["contrast"][0] - bus.contrast_centre - bus.contrast_offset) / bus.contrast_gain + bus.contrast_centre
    assert bus.contrast_gain != 1 and len(seen["contrast"]) == 1
    assert min(abs(drawn - c) for cs in table.values() for c in cs) < 1e-6
    assert seen["sharpness"] is None


@pytest.mark.realdata
def test_an_edge_ramp_checkpoint_repaints_with_its_ramp_hint(busi_backgrounds):
    """A ControlNet trained on inward-ramp edge hints gets the ramp in real-background mode too (the hint's
    default, a band, is another picture of the same sharpness)."""
    bus = create_generator("checkpoints/bus-ramp-g4-cal-busi-128", steps=2)
    seen, pipe = {}, bus.pipe

    def recording(*args, **kwargs):
        seen.update(kwargs)
        return pipe(*args, **kwargs)

    bus.pipe = recording
    bus.pipe.unet, bus.pipe.vae = pipe.unet, pipe.vae
    pairs = RealBackgroundGenerator(bus, real_backgrounds(busi_backgrounds)).sample(
        seeds=[11], conditions=[Condition("benign")], batch_size=1)
    assert len(pairs) == 1 and pairs[0].mask.sum() > 0
    assert bus.edge_hint == "ramp" and seen["edge"] == "ramp" and len(seen["sharpness"]) == 1

