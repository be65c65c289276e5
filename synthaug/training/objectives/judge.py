"""The quality judge's objective: Dice + BCE segmentation on real training cases (see models/judge.py).

Trained by the same loop as the generators, so it resumes, logs and exports like them;
flips and small intensity changes keep it from memorising the few hundred cases it sees.
"""
from __future__ import annotations

from pathlib import Path

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F

from ...models.judge import JudgeSegmenter
from ...pipelines.base import write_generator_info


class JudgeObjective:
    def __init__(self, resolution: int = 128, encoder: str = "resnet18", hflip: bool = True,
                 intensity_jitter: float = 0.1):
        self.resolution, self.hflip, self.jitter = resolution, hflip, intensity_jitter
        self.models = {"judge": JudgeSegmenter(encoder=encoder, resolution=resolution)}
        self.dice_loss = smp.losses.DiceLoss("binary", from_logits=True)
        self.bce = smp.losses.SoftBCEWithLogitsLoss()

    def trainable(self):
        return self.models

    def loss(self, batch, models):
        x, y = batch["image"].float(), batch["mask"].float()
        if x.shape[-1] != self.resolution:
            x = F.interpolate(x, size=(self.resolution,) * 2, mode="area")
            y = (F.interpolate(y, size=(self.resolution,) * 2, mode="nearest") > 0.5).float()
        if self.hflip:
            flip = (torch.rand(x.shape[0], device=x.device) < 0.5).view(-1, 1, 1, 1)
            x, y = torch.where(flip, x.flip(-1), x), torch.where(flip, y.flip(-1), y)
        if self.jitter:
            gain = 1 + self.jitter * (2 * torch.rand(x.shape[0], 1, 1, 1, device=x.device) - 1)
            x = (x * gain).clamp(0, 1)
        logits = models["judge"](x).float()
        dice, bce = self.dice_loss(logits, y), self.bce(logits, y)
        return dice + bce, {"dice_loss": dice.item(), "bce": bce.item()}

    def export(self, models, out: Path, info: dict) -> Path:
        out = Path(out)
        models["judge"].save_pretrained(str(out / "judge"), safe_serialization=True)
        write_generator_info(out, {"generator": "judge", "resolution": self.resolution, **info})
        return out
