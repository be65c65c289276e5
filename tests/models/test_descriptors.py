"""BI-RADS descriptors measured from image and mask (issue 34)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from synthaug.models.descriptors import (DescriptorRule, boundary_sharpness, descriptor_prompt, echo_word,
                                       invert_map, lesion_contrast, parse_mix, quantile_map)
from synthaug.errors import SynthaugError


def disk_case(inside: float, outside: float, blur: float = 0.0, size: int = 64, r: int = 14):
    yy, xx = np.mgrid[:size, :size]
    mask = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= r * r
    image = np.where(mask, inside, outside).astype(np.float64)
    if blur:
        image = ndimage.gaussian_filter(image, blur)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def test_contrast_is_the_surround_minus_the_core_in_grey_levels():
    image, mask = disk_case(40, 140)
    assert lesion_contrast(image, mask) == pytest.approx(100, abs=1)
    assert echo_word(lesion_contrast(*disk_case(120, 140))) == "isoechoic"
    assert echo_word(50) == "hypoechoic" and echo_word(100) == "markedly hypoechoic"
    assert np.isnan(lesion_contrast(image, np.zeros_like(mask)))


def test_a_blurred_boundary_is_less_sharp():
    sharp = boundary_sharpness(*disk_case(40, 140))
    soft = boundary_sharpness(*disk_case(40, 140, blur=3))
    assert sharp > 0.9 and soft < 0.7 * sharp


def test_rule_words_and_shares_on_constructed_cases():
    images, masks = zip(*[disk_case(40, 140), disk_case(120, 140, blur=3), disk_case(60, 140, blur=1)])
    rule = DescriptorRule.fit(images, masks, ["benign", "benign", "malignant"])
    words = [rule.describe(i, m) for i, m in zip(images, masks)]
    assert words[0]["echo"] == "markedly hypoechoic" and words[1]["echo"] == "isoechoic"
    assert words[1]["margin"] == "indistinct"
    assert sum(rule.shares["benign"].values()) == pytest.approx(1)
    assert descriptor_prompt("benign", "isoechoic", "indistinct") == "benign tumor, isoechoic, with indistinct margin"


def test_descriptor_mixes_parse_and_bad_ones_fail_with_one_message():
    mix = parse_mix("echo=isoechoic:3,hypoechoic:1;margin=indistinct")
    assert mix == {"echo": {"isoechoic": 0.75, "hypoechoic": 0.25}, "margin": {"indistinct": 1.0}}
    for bad in ("echo=bright", "colour=red", "echo", "echo=isoechoic:x", "echo=isoechoic:0"):
        with pytest.raises(SynthaugError):
            parse_mix(bad)


@pytest.mark.realdata
def test_busi_train_contrast_matches_the_issue_measurement(busi_root):
    from synthaug.data.datasets import PairDataset

    ds = PairDataset.from_busi(busi_root, split="train", size=128)
    c = np.array([lesion_contrast(r.image, r.mask) for r in ds.records])
    assert np.percentile(c, 50) == pytest.approx(57, abs=2) and np.mean(c < 30) == pytest.approx(0.15, abs=0.02)


def test_the_contrast_hint_holds_each_lesions_contrast_inside_its_mask():
    import torch

    from synthaug.models.descriptors import CONTRAST_SCALE, control_hint

    masks = torch.zeros(2, 1, 8, 8)
    masks[:, :, 2:5, 2:5] = 1
    assert torch.equal(control_hint(masks), masks * 2 - 1)  # no contrast: the first checkpoints' hint
    hint = control_hint(masks, [25.0, 110.0])
    assert hint.shape == (2, 2, 8, 8) and torch.equal(hint[:, :1], masks * 2 - 1)
    assert hint[0, 1, 3, 3] == pytest.approx(25 / CONTRAST_SCALE) and hint[1, 1, 3, 3] == pytest.approx(1.1)
    assert hint[:, 1, 0, 0].abs().sum() == 0



def test_the_edge_hint_holds_each_lesions_sharpness_on_the_band_where_it_is_measured():
    import torch

    from synthaug.models.descriptors import EDGE_BAND, SHARPNESS_MAX, control_hint

    masks = torch.zeros(2, 1, 24, 24)
    masks[:, :, 8:16, 8:16] = 1
    hint = control_hint(masks, [40.0, 40.0], [0.3, 5.0])
    assert hint.shape == (2, 3, 24, 24) and torch.equal(hint[:, :2], control_hint(masks, [40.0, 40.0]))
    band = hint[0, 2] > 0
    rows = band[:, 12].nonzero().flatten().tolist()  # a line across the left and right edges
    assert rows == list(range(8 - EDGE_BAND, 8 + EDGE_BAND)) + list(range(16 - EDGE_BAND, 16 + EDGE_BAND))
    assert hint[0, 2, 12, 12] == 0 and hint[0, 2, 0, 0] == 0  # not deep inside, not far outside
    assert hint[0, 2][band].unique().tolist() == [pytest.approx(0.3)]
    assert hint[1, 2].max() == SHARPNESS_MAX  # clipped
    with pytest.raises(SynthaugError, match="contrast"):
        control_hint(masks, None, [0.3, 0.3])


def test_the_ramp_edge_hint_ramps_each_mask_inward_by_its_sharpness():
    """Issue 34: a soft BUSI margin ramps inside the outline; the "ramp" hint draws that in the mask channel."""
    import torch

    from synthaug.models.descriptors import RAMP_PX, control_hint, edge_ramp

    masks = torch.zeros(3, 1, 32, 32)
    masks[:, :, 6:26, 6:26] = 1
    ramp = edge_ramp(masks, [1.0, 0.5, -3.0])  # w = 1, 1 + RAMP_PX / 2, 1 + RAMP_PX (clipped)
    assert torch.equal(ramp[0], masks[0])  # a sharp lesion: the binary mask
    assert torch.equal(ramp > 0, masks > 0)  # never outside the mask, nowhere zero inside it
    w = 1 + RAMP_PX / 2
    row = ramp[1, 0, 16, 6:16].tolist()  # from the left outline to the centre
    assert row[:4] == [pytest.approx(k / w) for k in (1, 2, 3, 4)] and row[-1] == 1.0
    assert all(a <= b for a, b in zip(row, row[1:])) and ramp[2, 0, 16, 6] == pytest.approx(1 / (1 + RAMP_PX))
    hint = control_hint(masks, [40.0] * 3, [1.0, 0.5, 0.0], edge="ramp")
    assert hint.shape == (3, 2, 32, 32) and torch.equal(hint[:, 1], control_hint(masks, [40.0] * 3)[:, 1])
    assert torch.allclose(hint[:, :1], edge_ramp(masks, [1.0, 0.5, 0.0]) * 2 - 1)
    with pytest.raises(SynthaugError, match="edge hint"):
        control_hint(masks, [40.0] * 3, [1.0] * 3, edge="blur")

def test_contrasts_are_drawn_from_the_training_lesions_of_that_type_and_word():
    from synthaug.models.descriptors import draw_measured, word_table

    words = [{"echo": e} for e in ("isoechoic", "isoechoic", "hypoechoic", "markedly hypoechoic")]
    table = word_table([12.0, 25.04, float("nan"), 95.0], words, ["benign", "benign", "malignant", "benign"])
    assert table == {"benign": {"isoechoic": [12.0, 25.0], "markedly hypoechoic": [95.0]}}  # NaN left out
    drawn = {draw_measured(table, "benign", "isoechoic", s) for s in range(40)}
    assert drawn == {12.0, 25.0} and draw_measured(table, "benign", "isoechoic", 3) == draw_measured(
        table, "benign", "isoechoic", 3)
    assert draw_measured(table, "malignant", "markedly hypoechoic", 0) == 95.0  # another type's when none
    with pytest.raises(SynthaugError, match="hypoechoic"):
        draw_measured(table, "malignant", "hypoechoic", 0)


def test_a_grown_hint_encoder_computes_what_the_loaded_one_did():
    import torch

    from synthaug.models.ldm import latent_unet, load_grown, mask_controlnet

    torch.manual_seed(0)
    unet = latent_unet(16, sample_size=8, in_channels=4, block_out_channels=(16, 16), cross_attention_levels=(1,),
                       norm_num_groups=8)
    old = mask_controlnet(unet, 2, conditioning_channels=(8, 8))
    torch.nn.init.normal_(old.controlnet_down_blocks[0].weight)  # diffusers zero-inits these: make outputs differ
    new = mask_controlnet(unet, 2, conditioning_channels=(8, 8), hint_channels=2)
    load_grown(new, old.state_dict())
    x, text = torch.randn(1, 4, 8, 8), torch.randn(1, 3, 16)
    mask = (torch.rand(1, 1, 16, 16) > 0.5).float()
    with torch.no_grad():
        a = old(x, 5, encoder_hidden_states=text, controlnet_cond=mask * 2 - 1, return_dict=False)[0][0]
        b = new(x, 5, encoder_hidden_states=text, controlnet_cond=torch.cat([mask * 2 - 1, mask * 0.7], 1),
                return_dict=False)[0][0]
    assert a.abs().sum() > 0 and torch.allclose(a, b)


@pytest.mark.parametrize("stage, prompts", [("ldm", "descriptors"), ("controlnet", "type-median")])
def test_the_contrast_hint_is_refused_where_it_cannot_be_trained(stage, prompts):
    from synthaug.training.objectives.ldm import LatentDiffusionObjective

    with pytest.raises(SynthaugError, match="contrast_control"):
        LatentDiffusionObjective(stage=stage, prompts=prompts, contrast_control=True, vae="unused")


def test_hints_through_the_quantile_map_make_the_wanted_distribution_of_a_weak_noisy_follower():
    """A network that makes 25 + 0.5 x hint (+-6 grey levels per lesion) from its hint: asked for a skewed
    real-like contrast distribution through the inverted map, it makes it within a few grey levels, where
    writing the wanted contrast as the hint misses by tens."""
    rng = np.random.default_rng(0)

    def network(hints):
        return 25 + 0.5 * np.asarray(hints) + rng.normal(0, 6, len(hints))

    calib_hints = rng.uniform(0, 200, 2000)
    qmap = quantile_map(calib_hints, network(calib_hints))
    assert np.all(np.diff(qmap["hint"]) > 0) and np.all(np.diff(qmap["measured"]) > 0)
    wanted = rng.gamma(4.0, 15.0, 4000)  # median about 55, a long bright tail, some faint lesions
    made = network(invert_map(wanted, qmap))
    naive = network(wanted)
    for q in (10, 50, 90):
        assert abs(np.percentile(made, q) - np.percentile(wanted, q)) < 4
    assert abs(np.percentile(naive, 90) - np.percentile(wanted, 90)) > 20
    beyond = invert_map([qmap["measured"][-1] + 10], qmap)[0]  # past the fitted range: the end slope, not a clip
    assert beyond > qmap["hint"][-1] + 10


def test_the_quantile_map_refuses_too_few_pairs_and_a_network_that_ignores_its_hint():
    with pytest.raises(SynthaugError, match="at least 42"):
        quantile_map(np.arange(30.0), np.arange(30.0))
    with pytest.raises(SynthaugError, match="does not follow"):
        quantile_map(np.arange(100.0), np.full(100, 50.0))
