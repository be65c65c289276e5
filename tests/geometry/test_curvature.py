"""Eq. 10 curvature and box helpers: known shapes, gradients, and the BUSI type effect."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from synthaug.geometry import boundary_curvature, box_iou, mask_boxes


def disk(r: float, size: int = 128) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) <= r * r).astype(np.float32)


@pytest.mark.parametrize("r", [8, 16, 32])
def test_disk_curvature_is_one_over_radius(r):
    """With enough smoothing the pixel staircase is gone and kappa is the geometric 1/r."""
    assert float(boundary_curvature(disk(r), sigma=2.0)) == pytest.approx(1 / r, rel=0.1)


def test_default_scale_still_orders_disks_by_radius():
    k = [float(boundary_curvature(disk(r))) for r in (8, 16, 32)]
    assert k[0] > k[1] > k[2]


def test_irregular_outline_curves_more_than_a_disk_of_equal_area():
    yy, xx = np.mgrid[:128, :128]
    theta = np.arctan2(yy - 64, xx - 64)
    wobbly = (np.hypot(yy - 64, xx - 64) <= 24 * (1 + 0.2 * np.sin(8 * theta))).astype(np.float32)
    r = np.sqrt(wobbly.sum() / np.pi)
    assert float(boundary_curvature(wobbly)) > 1.5 * float(boundary_curvature(disk(r)))


def test_soft_masks_get_gradients_and_empty_masks_give_nan():
    m = torch.rand(3, 1, 32, 32, requires_grad=True)
    k = boundary_curvature(m)
    k.sum().backward()
    assert k.shape == (3,) and torch.isfinite(k).all() and m.grad.abs().sum() > 0
    assert torch.isnan(boundary_curvature(np.zeros((32, 32), np.float32))).all()


def test_mask_boxes_and_iou():
    m = torch.zeros(2, 1, 10, 20)
    m[0, 0, 2:5, 4:10] = 1
    m[1, 0, 0:10, 0:20] = 1
    boxes = mask_boxes(m)
    assert torch.allclose(boxes[0], torch.tensor([0.2, 0.2, 0.5, 0.5]))
    assert torch.allclose(boxes[1], torch.tensor([0.0, 0.0, 1.0, 1.0]))
    iou = box_iou(boxes, torch.tensor([[0.2, 0.2, 0.5, 0.5], [0.0, 0.0, 0.5, 1.0]]))
    assert torch.allclose(iou, torch.tensor([1.0, 0.5]))


def test_busi_malignant_masks_curve_more_than_benign(busi_root):
    """The premise of L_cur on our data: malignant outlines are more curved (the paper: 0.789 vs 0.679)."""
    from synthaug.data.datasets import PairDataset

    ds = PairDataset.from_busi(busi_root, split="train", size=128)
    labels = np.array(ds.labels)
    pick = np.concatenate([np.flatnonzero(labels == c)[:60] for c in (0, 1)])
    masks = torch.stack([ds[int(i)]["mask"] for i in pick])
    k = boundary_curvature(masks).numpy()
    benign, malignant = np.nanmean(k[labels[pick] == 0]), np.nanmean(k[labels[pick] == 1])
    assert malignant > benign * 1.1
