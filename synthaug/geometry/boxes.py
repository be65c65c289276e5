"""Bounding boxes of mask batches (torch), normalised to [0, 1] like ``Condition.box``."""
from __future__ import annotations

import torch


def mask_boxes(masks: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Normalised ``[x0, y0, x1, y1]`` of each (B, 1, H, W) mask's pixels above ``threshold`` (x1, y1 exclusive)."""
    h, w = masks.shape[-2:]
    on = masks[:, 0] > threshold
    rows, cols = on.any(dim=2), on.any(dim=1)

    def span(a: torch.Tensor, n: int):
        idx = torch.arange(n, device=a.device)
        lo = torch.where(a, idx, n).min(dim=1).values
        hi = torch.where(a, idx, -1).max(dim=1).values + 1
        return lo.float() / n, hi.float() / n

    x0, x1 = span(cols, w)
    y0, y1 = span(rows, h)
    return torch.stack([x0, y0, x1, y1], 1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of matching rows of two (B, 4) box tensors."""
    lo, hi = torch.maximum(a[:, :2], b[:, :2]), torch.minimum(a[:, 2:], b[:, 2:])
    inter = (hi - lo).clamp(min=0).prod(1)
    area = lambda x: (x[:, 2:] - x[:, :2]).clamp(min=0).prod(1)  # noqa: E731
    return inter / (area(a) + area(b) - inter).clamp(min=1e-12)
