"""Dice, AUC/F1 and the EfficientNet-Lite0 set distances (small synthetic sets to stay fast)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from synthaug.errors import SynthaugError
from synthaug.metrics import (auc_f1, dice, frechet_distance, image_features, kernel_distance, mean_dice,
                              set_distances)


# ----------------------------------------------------------------------------- dice / classification
def test_dice_known_values():
    a = np.array([[1, 1, 0, 0]])
    assert dice(a, np.array([[1, 0, 0, 0]])) == pytest.approx(2 / 3)
    assert dice(a, a) == 1.0
    assert dice(a, 1 - a) == 0.0
    assert dice(np.zeros((3, 3)), np.zeros((3, 3), bool)) == 1.0  # empty-empty is a correct answer
    assert dice(np.zeros((3, 3)), np.eye(3)) == 0.0
    assert dice(torch.ones(2, 2, dtype=torch.bool), torch.ones(2, 2)) == 1.0


def test_mean_dice_and_errors():
    preds = np.array([[[1, 1], [0, 0]], [[0, 0], [0, 0]]])
    targets = np.array([[[1, 0], [0, 0]], [[0, 0], [0, 0]]])
    assert mean_dice(preds, targets) == pytest.approx((2 / 3 + 1) / 2)
    with pytest.raises(SynthaugError, match="binary"):
        dice(np.array([0.2, 0.9]), np.array([0, 1]))
    with pytest.raises(SynthaugError, match="shape"):
        dice(np.zeros(3), np.zeros(4))
    with pytest.raises(SynthaugError):
        mean_dice(preds, targets[:1])


def test_auc_f1():
    r = auc_f1([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    assert r["auc"] == pytest.approx(0.75) and r["f1"] == pytest.approx(0.5)
    assert auc_f1([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], threshold=0.3)["f1"] == pytest.approx(0.8)
    assert math.isnan(auc_f1([1, 1], [0.2, 0.8])["auc"])


# ----------------------------------------------------------------------------- distances on known features
def test_frechet_distance_of_shifted_gaussians():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(200, 8))
    shift = np.arange(8) / 4
    assert frechet_distance(f, f + shift) == pytest.approx(float((shift ** 2).sum()), rel=1e-9)
    assert frechet_distance(f, f) == pytest.approx(0, abs=1e-9)


def test_frechet_distance_matches_scipy_formula_full_rank():
    from scipy import linalg

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 6)), rng.normal(1, 2, size=(250, 6))
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-8)


def test_frechet_distance_small_sets_rank_deficient():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(5, 40)), rng.normal(0.5, 1.5, size=(7, 40))  # n < d: the nuclear-norm path
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s1)
    r = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2) - 2 * np.sqrt(
        np.clip(np.linalg.eigvalsh(r @ s2 @ r), 0, None)).sum()
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)


def test_kernel_distance_is_unbiased_near_zero_for_same_distribution():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    far = kernel_distance(a, b + 1, subsets=20, subset_size=100)
    assert abs(kernel_distance(a, b, subsets=20, subset_size=100)) < 0.05 * far
    assert kernel_distance(a, b, subsets=3, seed=3) == kernel_distance(a, b, subsets=3, seed=3)
    with pytest.raises(SynthaugError):
        kernel_distance(a[:1], b)


# ----------------------------------------------------------------------------- EfficientNet-Lite0 features
def _tissue(rng, n=10, size=64) -> np.ndarray:
    """Speckled 'ultrasound-like' images: smooth background, a dark ellipse, multiplicative noise."""
    yy, xx = np.mgrid[:size, :size] / size
    out = []
    for _ in range(n):
        cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.25)
        base = 120 + 60 * yy - 90 * (((yy - cy) ** 2 + (xx - cx) ** 2) < r ** 2)
        out.append(np.clip(base * rng.gamma(4, 0.25, (size, size)), 0, 255).astype(np.uint8))
    return np.stack(out)


@pytest.fixture(scope="module")
def feats():
    rng = np.random.default_rng(0)
    real = _tissue(rng)
    perturbed = np.clip(real + rng.normal(0, 4, real.shape), 0, 255).astype(np.uint8)
    noise = rng.integers(0, 256, real.shape, dtype=np.uint8)
    return {k: image_features(v) for k, v in (("real", real), ("perturbed", perturbed), ("noise", noise))}


def test_image_features_shape_and_inputs(feats):
    assert feats["real"].shape == (10, 1280) and np.isfinite(feats["real"]).all()
    img = np.random.default_rng(1).integers(0, 256, (1, 40, 50), dtype=np.uint8)
    as_float = image_features(torch.from_numpy(img).float()[:, None] / 255)  # Nx1xHxW float in [0, 1]
    np.testing.assert_allclose(as_float, image_features(list(img)), atol=1e-4)
    with pytest.raises(SynthaugError, match="grayscale"):
        image_features([np.zeros((4, 4, 3), np.uint8)])


def test_frechet_distance_orders_sets(feats):
    assert frechet_distance(feats["real"], feats["real"]) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(feats["real"], feats["noise"]) > frechet_distance(feats["real"], feats["perturbed"])


def test_kernel_distance_orders_sets(feats):
    same = kernel_distance(feats["real"], feats["real"], subsets=10)
    near = kernel_distance(feats["real"], feats["perturbed"], subsets=10)
    far = kernel_distance(feats["real"], feats["noise"], subsets=10)
    assert far > near and abs(same) < 0.1 * far


def test_set_distances_smoke():
    rng = np.random.default_rng(5)
    d = set_distances(list(_tissue(rng, n=2, size=32)), list(_tissue(rng, n=2, size=32)), subsets=2)
    assert set(d) == {"fd", "kid"} and d["fd"] >= 0


def test_psnr_ssim_known_values():
    from synthaug.metrics import psnr_ssim

    a = np.full((16, 16), 100, np.uint8)
    b = a.copy()
    b[0, :] = 110  # MSE = 100/16 -> PSNR = 10 log10(255^2 / 6.25)
    r = psnr_ssim([a], [b])
    assert r["psnr"] == pytest.approx(10 * np.log10(255 ** 2 / 6.25)) and r["ssim"] < 1 and r["n"] == 1
    with pytest.raises(SynthaugError):
        psnr_ssim([a], [])
