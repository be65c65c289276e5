"""The quality judge: a lesion segmenter trained on a dataset's real training cases only.

A generated pair is coherent when a segmenter that has only seen real data finds
the pair's own mask in its image (the Dice of its prediction against the mask).
The judge is smp's U-Net on a ResNet-18 encoder from scratch (no pretrained weights
can be fetched here), wrapped as a diffusers ``ModelMixin`` so it is saved and loaded
like every other synthaug model (safetensors, ``save_pretrained``).
"""
from __future__ import annotations

import numpy as np
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config

from ..metrics import dice
from ..precision import use_bf16


class JudgeSegmenter(ModelMixin, ConfigMixin):
    """Grey images (B, 1, H, W) in [0, 1] -> lesion logits (B, 1, H, W)."""

    @register_to_config
    def __init__(self, encoder: str = "resnet18", resolution: int = 128):
        super().__init__()
        self.net = smp.Unet(encoder, encoder_weights=None, in_channels=1, classes=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @torch.no_grad()
    def dice(self, images, masks, batch_size: int = 1, bf16: bool = True) -> np.ndarray:
        """Dice of the judge's prediction against each pair's own mask, at the judge's resolution.

        ``images`` uint8 (H, W) arrays, ``masks`` boolean arrays of the same sizes; sizes may differ.
        One image at a time by default: bf16 kernels block by batch, so a score would otherwise depend
        on the other pairs scored with it (a pair near the threshold could pass in one run, fail in another)."""
        self.eval()
        r = self.config.resolution
        out = []
        for i in range(0, len(images), batch_size):
            x = torch.stack([_resized(torch.from_numpy(np.asarray(im, np.float32) / 255.0), r, "area")
                             for im in images[i:i + batch_size]])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=x.device.type == "cpu" and use_bf16(bf16)):
                pred = self(x.to(self.device)).float().cpu()[:, 0] > 0
            for p, m in zip(pred, masks[i:i + batch_size]):
                target = _resized(torch.from_numpy(np.asarray(m) > 0).float(), r, "nearest")[0] > 0.5
                out.append(dice(p.numpy(), target.numpy()))
        return np.array(out, dtype=np.float64)


def _resized(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """(H, W) -> (1, size, size)."""
    x = x[None, None]
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode=mode)
    return x[0]
