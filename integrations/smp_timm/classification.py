"""Benign vs malignant classification with timm models (resnet50, densenet121, efficientnet_b0,
mobilenetv2_100, ...), trained from scratch on 1-channel images; items with label -1 are skipped."""
from __future__ import annotations

import numpy as np
import timm
import torch
import torch.nn.functional as F

from ._loop import fit, predict


def build_classifier(name: str = "resnet18") -> torch.nn.Module:
    return timm.create_model(name, pretrained=False, in_chans=1, num_classes=1)


def train_classifier(model, dataset, epochs: int = 20, **kwargs) -> torch.nn.Module:
    """Binary cross-entropy on labelled items (malignant = 1)."""

    def step_loss(m, batch):
        keep = batch["label"] >= 0
        logits = m(batch["image"][keep]).float()[:, 0]
        return F.binary_cross_entropy_with_logits(logits, batch["label"][keep].float())

    return fit(model, dataset, step_loss, epochs, desc="classifier", **kwargs)


def predict_scores(model, dataset, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """(malignancy probability, label) per item."""
    scores, labels = [], []
    for batch, logits in predict(model, dataset, **kwargs):
        scores.append(torch.sigmoid(logits[:, 0]).numpy())
        labels.append(batch["label"].numpy())
    return np.concatenate(scores), np.concatenate(labels)
