"""VAE for latent diffusion (BUS generator, Pan et al. section 3.1): diffusers AutoencoderKL, L1 + KL.

No Stable Diffusion weights exist here, so the CPU recipe trains a small
AutoencoderKL from scratch on the training images; ``init_from`` starts from any
local diffusers AutoencoderKL folder instead (an SD VAE included: a 3-channel
VAE sees the grey image repeated on its channels and returns their mean).
Training can read random ``crop`` x ``crop`` windows (the network is fully
convolutional, as LDM trains its autoencoders on crops): 64 px crops make a CPU
step 4x cheaper and the exported VAE still codes the whole 128 px image.
The latent scale diffusion needs (diffusers' ``scaling_factor``) is set at export
from a running estimate of the latent standard deviation.
"""
from __future__ import annotations

import types
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from ...errors import SynthaugError
from ...pipelines.base import write_generator_info
from ...pipelines.loading import load_vae  # noqa: F401  (re-exported: callers import it from here)


def small_vae(resolution: int = 128, block_out_channels=(32, 64, 128), latent_channels: int = 4,
              layers_per_block: int = 1, norm_num_groups: int = 16, in_channels: int = 1,
              mid_block_add_attention: bool = False) -> AutoencoderKL:
    """An AutoencoderKL with 2^(levels-1) downsampling (128 px -> 32x32 latent with three levels).

    Without the mid-block self-attention by default: on a 32x32 latent it attends
    over 1024 tokens, the most expensive layer on a CPU, for little gain at 128 px.
    """
    n = len(block_out_channels)
    return AutoencoderKL(in_channels=in_channels, out_channels=in_channels, latent_channels=latent_channels,
                         block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
                         down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
                         norm_num_groups=norm_num_groups, sample_size=resolution,
                         mid_block_add_attention=mid_block_add_attention)


def to_vae(x: torch.Tensor, vae: AutoencoderKL) -> torch.Tensor:
    """Grey (B, 1, H, W) in [-1, 1] to the VAE's channel count."""
    return x.expand(-1, vae.config.in_channels, -1, -1) if vae.config.in_channels != x.shape[1] else x


def from_vae(y: torch.Tensor) -> torch.Tensor:
    return y.mean(1, keepdim=True) if y.shape[1] != 1 else y


def random_crops(x: torch.Tensor, size: int) -> torch.Tensor:
    """One random ``size`` x ``size`` window per image of the batch."""
    h, w = x.shape[-2:]
    ys = torch.randint(0, h - size + 1, (x.shape[0],)).tolist()
    xs = torch.randint(0, w - size + 1, (x.shape[0],)).tolist()
    return torch.stack([im[..., y:y + size, x0:x0 + size] for im, y, x0 in zip(x, ys, xs)])


@torch.no_grad()
def reconstruct(vae: AutoencoderKL, images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """Encode (posterior mean) and decode grey images (B, 1, H, W) in [-1, 1]; the VAE's round trip."""
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].float()
        out.append(from_vae(vae.decode(vae.encode(to_vae(x, vae)).latent_dist.mean).sample.float()).clamp(-1, 1))
    return torch.cat(out)


def _encode_decode(self: AutoencoderKL, x: torch.Tensor):
    """The training forward of an AutoencoderKL: (posterior, reconstruction of a posterior sample)."""
    posterior = self.encode(x).latent_dist
    return posterior, self.decode(posterior.sample()).sample


class VaeObjective:
    def __init__(self, resolution: int = 128, vae: dict | None = None, kl_weight: float = 1e-6, hflip: bool = True,
                 crop: int | None = None):
        if crop is not None and (crop > resolution or crop % 8):
            raise SynthaugError(f"VAE crop {crop} must be a multiple of 8 and at most the resolution {resolution}")
        self.resolution, self.kl_weight, self.hflip, self.crop = resolution, kl_weight, hflip, crop
        self.models = {"vae": small_vae(resolution, **(vae or {}))}
        self._latent_var: float | None = None

    def trainable(self):
        return self.models

    def init_from(self, path: Path) -> None:
        """Start from a local pretrained AutoencoderKL (replaces the recipe's architecture)."""
        self.models["vae"] = load_vae(path)

    def loss(self, batch, models):
        vae = models["vae"]
        x = batch["image"].float() * 2 - 1
        if x.shape[-1] != self.resolution:
            x = F.interpolate(x, size=(self.resolution,) * 2, mode="area")
        if self.hflip:
            flip = (torch.rand(x.shape[0], device=x.device) < 0.5).view(-1, 1, 1, 1)
            x = torch.where(flip, x.flip(-1), x)
        if self.crop and self.crop < self.resolution:
            x = random_crops(x, self.crop)
        # one forward call (encode + decode): under several processes DDP syncs only what its forward ran;
        # the weights and the saved model are unchanged
        core = getattr(vae, "module", vae)
        if getattr(core.forward, "__func__", None) is not _encode_decode:
            core.forward = types.MethodType(_encode_decode, core)
        posterior, rec = vae(to_vae(x, core))
        rec = from_vae(rec.float())
        l_rec = F.l1_loss(rec, x)
        l_kl = posterior.kl().float().mean()
        var = float(posterior.mean.detach().float().var())
        self._latent_var = var if self._latent_var is None else 0.99 * self._latent_var + 0.01 * var
        return l_rec + self.kl_weight * l_kl, {"l1": l_rec.item(), "kl": l_kl.item()}

    def export(self, models, out: Path, info: dict) -> Path:
        vae = models["vae"]
        if self._latent_var:
            vae.register_to_config(scaling_factor=round(1.0 / self._latent_var ** 0.5, 5))
        out = Path(out)
        torch.nn.Module.to(vae, torch.float16).save_pretrained(str(out / "vae"), safe_serialization=True)
        torch.nn.Module.to(vae, torch.float32)
        meta = {"generator": "vae", "resolution": self.resolution, "kl_weight": self.kl_weight,
                "scaling_factor": vae.config.scaling_factor, **info}
        write_generator_info(out, meta)  # last: records the sha256 of every file saved above
        return out
