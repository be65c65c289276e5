"""Lesion segmentation with segmentation_models.pytorch models.

Architectures: ``unet``, ``unetplusplus``, ``resunet`` (U-Net on a ResNet
encoder with residual blocks, i.e. smp's Unet + resnet34) and ``attunet``
(smp's Unet with scSE attention in the decoder, smp's built-in attention; smp
has no Attention-U-Net class). Encoders train from scratch: no ImageNet
weights can be fetched here.
"""
from __future__ import annotations

import numpy as np
import segmentation_models_pytorch as smp
import torch

from synthaug.metrics import dice

from ._loop import fit, predict

ARCHS = {
    "unet": lambda enc: smp.Unet(enc, encoder_weights=None, in_channels=1, classes=1),
    "unetplusplus": lambda enc: smp.UnetPlusPlus(enc, encoder_weights=None, in_channels=1, classes=1),
    "resunet": lambda enc: smp.Unet("resnet34", encoder_weights=None, in_channels=1, classes=1),
    "attunet": lambda enc: smp.Unet(enc, encoder_weights=None, in_channels=1, classes=1, decoder_attention_type="scse"),
}


def build_segmenter(arch: str = "unet", encoder: str = "resnet18") -> torch.nn.Module:
    if arch not in ARCHS:
        raise ValueError(f"unknown segmentation architecture {arch!r}; choose from {sorted(ARCHS)}")
    return ARCHS[arch](encoder)


def train_segmenter(model, dataset, epochs: int = 20, **kwargs) -> torch.nn.Module:
    """Dice + BCE (smp losses) on the dataset's (image, mask) items."""
    dice_loss = smp.losses.DiceLoss("binary", from_logits=True)
    bce = smp.losses.SoftBCEWithLogitsLoss()

    def step_loss(m, batch):
        logits = m(batch["image"]).float()
        return dice_loss(logits, batch["mask"]) + bce(logits, batch["mask"])

    return fit(model, dataset, step_loss, epochs, desc="segmenter", **kwargs)


def predict_masks(model, dataset, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, true) boolean masks, N x H x W."""
    preds, trues = [], []
    for batch, logits in predict(model, dataset, **kwargs):
        preds.append((logits[:, 0] > 0).numpy())
        trues.append(batch["mask"][:, 0].numpy() > 0.5)
    return np.concatenate(preds), np.concatenate(trues)


def dice_per_case(model, dataset, **kwargs) -> np.ndarray:
    pred, true = predict_masks(model, dataset, **kwargs)
    return np.array([dice(p, t) for p, t in zip(pred, true)])
