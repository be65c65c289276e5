"""SCMG networks (Pan et al., MedIA 2025, section 3.2): the mask generator G and the dual-branch D.

G(z, k, s): latent z -> linear -> C0 x H0 x W0; the tumour-type embedding is
broadcast and concatenated; then blocks of [nearest x2, SPADE(., s), ReLU, 3x3
conv], a final 3x3 conv and a sigmoid. ``s`` is the bounding-rectangle map (1
inside the requested box), so SPADE places the lesion.

D: a spatial branch (strided convs + instance norm) on the mask and a frequency
branch on its centred log-magnitude Fourier spectrum, pooled and concatenated,
with two heads: D_adv (real/fake logit) and D_cls (tumour-type logits). As in
SPADE's discriminators, the spatial branch also sees the rectangle map, so a
mask that ignores its box is told apart from a real one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from .spade import SPADE


class SCMGGenerator(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, latent_dim: int = 128, num_classes: int = 2, class_embed_dim: int = 16,
                 base_size: int = 4, block_out_channels: tuple = (256, 128, 64, 32, 16), spade_hidden: int = 32):
        super().__init__()
        c0 = block_out_channels[0]
        self.fc = nn.Linear(latent_dim, c0 * base_size * base_size)
        self.embed = nn.Embedding(num_classes, class_embed_dim)
        chans = [c0 + class_embed_dim, *block_out_channels]
        self.spades = nn.ModuleList(SPADE(cin, 1, spade_hidden) for cin in chans[:-1])
        self.convs = nn.ModuleList(nn.Conv2d(cin, cout, 3, padding=1) for cin, cout in zip(chans[:-1], chans[1:]))
        self.out = nn.Conv2d(chans[-1], 1, 3, padding=1)

    @property
    def sample_size(self) -> int:
        return self.config.base_size * 2 ** len(self.config.block_out_channels)

    def forward(self, z: torch.Tensor, labels: torch.Tensor, box_map: torch.Tensor) -> torch.Tensor:
        """Soft masks in [0, 1], (B, 1, S, S); ``labels`` are class ids, ``box_map`` (B, 1, S, S)."""
        b, base = z.shape[0], self.config.base_size
        h = self.fc(z).view(b, -1, base, base)
        k = self.embed(labels)[:, :, None, None].expand(-1, -1, base, base)
        h = torch.cat([h, k], 1)
        for spade, conv in zip(self.spades, self.convs):
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = conv(F.relu(spade(h, box_map)))
        return torch.sigmoid(self.out(h))


def _branch(in_channels: int, channels: tuple) -> nn.Sequential:
    """Strided 4x4 convs; instance norm after the first; LeakyReLU."""
    layers, cin = [], in_channels
    for i, c in enumerate(channels):
        layers += [nn.Conv2d(cin, c, 4, stride=2, padding=1)]
        if i > 0:
            layers += [nn.InstanceNorm2d(c, affine=True)]
        layers += [nn.LeakyReLU(0.2)]
        cin = c
    return nn.Sequential(*layers)


def log_spectrum(mask: torch.Tensor) -> torch.Tensor:
    """Centred log(1 + |FFT2|) of each mask (orthonormal FFT): the frequency branch's input."""
    spec = torch.fft.fftshift(torch.fft.fft2(mask.float(), norm="ortho"), dim=(-2, -1)).abs()
    return torch.log1p(spec)


class DualBranchDiscriminator(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, num_classes: int = 2, spatial_channels: tuple = (32, 64, 128, 256),
                 frequency_channels: tuple = (16, 32, 64, 128), box_input: bool = True):
        super().__init__()
        self.spatial = _branch(2 if box_input else 1, spatial_channels)
        self.frequency = _branch(1, frequency_channels)
        feat = spatial_channels[-1] + frequency_channels[-1]
        self.adv = nn.Linear(feat, 1)
        self.cls = nn.Linear(feat, num_classes)

    def forward(self, mask: torch.Tensor, box_map: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(adversarial logit (B,), class logits (B, num_classes))."""
        x = torch.cat([mask, box_map], 1) if self.config.box_input else mask
        s = self.spatial(x).mean(dim=(2, 3))
        f = self.frequency(log_spectrum(mask).to(mask.dtype)).mean(dim=(2, 3))
        h = torch.cat([s, f], 1)
        return self.adv(h).squeeze(1), self.cls(h)


def box_maps(boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Rectangle maps (B, 1, size, size): 1 inside each normalised box ``[x0, y0, x1, y1]``."""
    grid = (torch.arange(size, device=boxes.device, dtype=torch.float32) + 0.5) / size
    x0, y0, x1, y1 = (boxes[:, i].float().view(-1, 1) for i in range(4))
    inside_x = (grid[None] >= x0) & (grid[None] < x1)
    inside_y = (grid[None] >= y0) & (grid[None] < y1)
    return (inside_y[:, :, None] & inside_x[:, None, :]).float()[:, None]
