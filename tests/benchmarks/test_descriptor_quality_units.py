"""descriptor_quality.py's control measure: does a lesion follow the contrast (or edge) the sampler asked for?"""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.descriptor_quality import following, vae_round_trip  # noqa: E402


def pair(asked: float | None, made: float):
    image = np.full((128, 128), 150, np.uint8)
    mask = np.zeros((128, 128), bool)
    mask[40:80, 40:80] = True
    image[mask] = 150 - made
    return SimpleNamespace(image=image, mask=mask, meta={} if asked is None else {"contrast_requested": asked})


def test_full_control_has_slope_one_and_half_control_slope_one_half():
    asked = [10, 30, 50, 70, 90]
    full = following([pair(a, a) for a in asked])
    half = following([pair(a, 50 + (a - 50) / 2) for a in asked])
    assert full["slope"] == pytest.approx(1, abs=0.02) and full["median_abs_error"] < 1 and full["r"] > 0.99
    assert half["slope"] == pytest.approx(0.5, abs=0.02) and half["median_abs_error"] == pytest.approx(10, abs=1)
    shifted = following([pair(a, a + 15) for a in asked])  # follows fully, 15 grey levels too visible
    assert shifted["slope"] == pytest.approx(1, abs=0.02) and shifted["median_bias"] == pytest.approx(15, abs=1)
    assert shifted["intercept"] == pytest.approx(15, abs=1) and full["median_bias"] == pytest.approx(0, abs=1)


def test_pairs_without_a_requested_contrast_give_no_measure():
    assert following([pair(None, 40) for _ in range(5)]) is None


def soft_pair(asked: float, width: int):
    """A 60-grey-level lesion whose edge ramps linearly over ``width`` px each side of the outline."""
    from scipy import ndimage

    mask = np.zeros((128, 128), bool)
    mask[40:80, 40:80] = True
    depth = ndimage.distance_transform_edt(mask) - ndimage.distance_transform_edt(~mask)  # + inside
    image = (150 - 60 * np.clip(0.5 + depth / (2 * width), 0, 1)).astype(np.uint8) if width else \
        np.where(mask, 90, 150).astype(np.uint8)
    return SimpleNamespace(image=image, mask=mask, meta={"sharpness_requested": asked})


def test_sharper_asked_edges_that_are_made_sharper_follow_with_a_positive_slope():
    pairs = [soft_pair(a, w) for a, w in ((1.0, 0), (0.8, 2), (0.6, 3), (0.4, 5), (0.2, 8))]
    f = following(pairs, "sharpness")
    assert f["n"] == 5 and f["slope"] > 0.3 and f["r"] > 0.9
    assert following([soft_pair(1.0, 0)] * 5, "contrast") is None  # no contrast was asked for


def test_the_vae_round_trip_gives_back_the_lesion_with_its_contrast():
    """The reference row 'real images through the VAE' must be the same images, not noise: a bright square
    lesion-like step comes back as uint8 of the same size with nearly the same contrast."""
    from synthaug.models.descriptors import lesion_contrast

    images = [pair(None, 60).image, pair(None, 20).image]
    back = vae_round_trip(str(Path(__file__).resolve().parents[2] / "checkpoints/bus-busi-128"), images)
    assert [b.shape for b in back] == [(128, 128)] * 2 and all(b.dtype == np.uint8 for b in back)
    mask = pair(None, 0).mask
    for original, made in zip(images, back):
        assert abs(lesion_contrast(made, mask) - lesion_contrast(original, mask)) < 12
    assert not np.array_equal(back[0], images[0])  # it did go through the network


def test_a_ramped_edge_is_wider_and_rises_less_at_the_outline_than_a_step():
    """The edge rise separates a soft margin (grey level ramping over 6 px inside the outline) from a step."""
    from scipy import ndimage

    from benchmarks.descriptor_quality import edge_rows
    from synthaug.models.descriptors import DescriptorRule

    step = pair(None, 80)
    depth = ndimage.distance_transform_edt(step.mask)
    ramped = np.where(step.mask, 150 - 80 * np.clip(depth / 6, 0, 1), 150).astype(np.uint8)
    faint = np.full_like(ramped, 150)  # no contrast: no rise to measure
    rule = DescriptorRule(curvature_threshold=10.0, sharpness_threshold=0.6)
    rows = edge_rows(rule, [step.image, ramped, faint], [step.mask] * 3)
    assert rows["all"]["n"] == 2 and rows["circumscribed"]["n"] == 1 and rows["indistinct"]["n"] == 1
    sharp, soft = rows["circumscribed"], rows["indistinct"]
    assert sharp["width"] == 0 and sharp["at_outline"] == pytest.approx(1)
    assert soft["width"] >= 4 and soft["at_outline"] < 0.3
