"""SPADE: spatially-adaptive normalisation (Park et al., CVPR 2019), written for synthaug.

SPADE(F, s) = gamma(s) * IN(F) + beta(s): the feature map is instance-normalised
without affine parameters, then modulated per pixel by maps predicted from the
condition ``s`` (here the bounding-rectangle map) resized to the features' scale.
gamma is predicted as 1 + delta so a fresh layer starts as plain normalisation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SPADE(nn.Module):
    def __init__(self, channels: int, cond_channels: int = 1, hidden: int = 32, kernel_size: int = 3):
        super().__init__()
        pad = kernel_size // 2
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(cond_channels, hidden, kernel_size, padding=pad), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, kernel_size, padding=pad)
        self.beta = nn.Conv2d(hidden, channels, kernel_size, padding=pad)

    def forward(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        cond = F.interpolate(cond, size=features.shape[-2:], mode="nearest")
        h = self.shared(cond)
        return (1 + self.gamma(h)) * self.norm(features) + self.beta(h)
