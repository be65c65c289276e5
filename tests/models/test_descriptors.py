"""BI-RADS descriptors measured from image and mask (issue 34)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from synthaug.models.descriptors import (DescriptorRule, boundary_sharpness, descriptor_prompt, echo_word,
                                       lesion_contrast, parse_mix)
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
