"""descriptor_quality.py's control measure: does a lesion follow the contrast the sampler asked for?"""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.descriptor_quality import contrast_following  # noqa: E402


def pair(asked: float | None, made: float):
    image = np.full((128, 128), 150, np.uint8)
    mask = np.zeros((128, 128), bool)
    mask[40:80, 40:80] = True
    image[mask] = 150 - made
    return SimpleNamespace(image=image, mask=mask, meta={} if asked is None else {"contrast_requested": asked})


def test_full_control_has_slope_one_and_half_control_slope_one_half():
    asked = [10, 30, 50, 70, 90]
    full = contrast_following([pair(a, a) for a in asked])
    half = contrast_following([pair(a, 50 + (a - 50) / 2) for a in asked])
    assert full["slope"] == pytest.approx(1, abs=0.02) and full["median_abs_error"] < 1 and full["r"] > 0.99
    assert half["slope"] == pytest.approx(0.5, abs=0.02) and half["median_abs_error"] == pytest.approx(10, abs=1)
    shifted = contrast_following([pair(a, a + 15) for a in asked])  # follows fully, 15 grey levels too visible
    assert shifted["slope"] == pytest.approx(1, abs=0.02) and shifted["median_bias"] == pytest.approx(15, abs=1)
    assert shifted["intercept"] == pytest.approx(15, abs=1) and full["median_bias"] == pytest.approx(0, abs=1)


def test_pairs_without_a_requested_contrast_give_no_measure():
    assert contrast_following([pair(None, 40) for _ in range(5)]) is None
