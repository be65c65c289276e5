"""PIG: Paired Image Generation with diffusion-guided diffusion (Zhang et al., MICCAI 2025).

Two diffusers ``UNet2DModel``s share one noise schedule:
- ``model_x`` (the guider) predicts the noise of the mask x_t given the noisy image y_t;
- ``model_y`` predicts the noise of the image y_t given a clean mask (at sampling
  time, the guider's one-step prediction x0_hat).
Sampling (Algorithm 2, sigma_t = 0) steps both chains with two copies of one
diffusers scheduler, so DDIM and DPM-Solver++ are interchangeable.
An optional class embedding (benign / malignant / null) lets pairs carry a label.
Latent PIG adds the frozen ``vae``: the image chain then runs on its scaled latent
(4 channels), the mask chain on the same grid, and sampling decodes the image and
leaves the mask at the grid for ``to_pairs`` to upsample and threshold.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DModel
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

from .base import (GENERATOR_INFO, LABELS, Condition, Pair, PairGenerator, check_steps, load_pipeline,
                   read_generator_info, to_uint8)
from .registry import register_generator
from ..errors import SynthaugError
from ..io.images import read_json
from ..precision import use_bf16
from .saving import save_pipeline
from .schedulers import make_scheduler


def predict_x0(sample: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """One-step clean estimate from an epsilon prediction, clipped to the data range [-1, 1]."""
    a = alpha_bar.view(-1, 1, 1, 1).to(sample.dtype)
    return ((sample - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)


def class_labels_for(model: UNet2DModel, labels: Sequence[str | None], device) -> torch.Tensor | None:
    """Class ids for a class-conditional U-Net: benign 0, malignant 1, unknown -> null (last id)."""
    n = model.config.num_class_embeds
    if not n:
        return None
    null = n - 1
    ids = [LABELS.index(l) if l in LABELS else null for l in labels]
    return torch.tensor(ids, device=device, dtype=torch.long)


class PIGPipeline(DiffusionPipeline):
    """Joint sampler of (mask, image) pairs; saved and loaded as one diffusers folder."""

    _optional_components = ["vae"]  # pixel-space checkpoints have none

    def __init__(self, model_x: UNet2DModel, model_y: UNet2DModel, scheduler, vae: AutoencoderKL | None = None):
        super().__init__()
        self.register_modules(model_x=model_x, model_y=model_y, scheduler=scheduler, vae=vae)

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_inference_steps: int = 256,
        scheduler: str = "ddim",
        labels: Sequence[str | None] | None = None,
        bf16: bool = True,
        progress: bool = True,
        mask_guidance: float = 0.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (masks, images) in [-1, 1], shape (B, 1, H, W): both at the model resolution, or with a VAE
        the masks at the latent grid and the images decoded to the VAE's resolution.

        ``mask_guidance`` w > 0 steers the image toward its mask, classifier-free-guidance style:
        eps_y = eps(empty mask) + (1 + w) (eps(x0_hat) - eps(empty mask)). The empty mask is the
        "no lesion here" condition (trained as such with the objective's ``mask_dropout``), so the contrast
        is the lesion the mask asks for. One doubled batch per step."""
        device = self.model_x.device
        res = self.model_x.config.sample_size
        shape = (batch_size, self.model_x.config.out_channels, res, res)
        x = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
        y = randn_tensor((batch_size, self.model_y.config.out_channels, res, res), generator=generator,
                         device=device, dtype=torch.float32)
        labels = list(labels) if labels is not None else [None] * batch_size
        cls_x = class_labels_for(self.model_x, labels, device)
        cls_y = class_labels_for(self.model_y, labels, device)
        latent = self.vae is not None
        # the schedule clips x0 to the data range [-1, 1]: right for pixels and masks, wrong for latents
        config_y = {**self.scheduler.config, "clip_sample": False} if latent else self.scheduler.config
        sched_x, sched_y = make_scheduler(scheduler, self.scheduler.config), make_scheduler(scheduler, config_y)
        sched_x.set_timesteps(num_inference_steps, device=device)
        sched_y.set_timesteps(num_inference_steps, device=device)
        alphas = sched_x.alphas_cumprod.to(device)
        amp = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16(bf16, device))
        for t in tqdm(sched_x.timesteps, desc=f"PIG {scheduler}", disable=not progress, leave=False):
            tt = t.expand(batch_size)
            with amp:
                eps_x = self.model_x(torch.cat([x, y], 1), tt, class_labels=cls_x).sample.float()
            x0_hat = predict_x0(x, eps_x, alphas[tt])
            eps_y = self._eps_image(x0_hat, y, tt, cls_y, mask_guidance, amp)
            x = sched_x.step(eps_x, t, x).prev_sample
            y = sched_y.step(eps_y, t, y).prev_sample
        if latent:
            y = self.decode(y)
        return x.clamp(-1, 1), y.clamp(-1, 1)

    def _eps_image(self, cond, y, tt, cls, w: float, amp) -> torch.Tensor:
        """model_y's noise prediction for image y given mask ``cond``, mask-guided when w > 0."""
        if w <= 0:
            with amp:
                return self.model_y(torch.cat([cond, y], 1), tt, class_labels=cls).sample.float()
        empty = torch.full_like(cond, -1.0)
        both = torch.cat([torch.cat([cond, y], 1), torch.cat([empty, y], 1)])
        with amp:
            eps = self.model_y(both, tt.repeat(2), class_labels=None if cls is None else cls.repeat(2)).sample.float()
        eps_c, eps_u = eps.chunk(2)
        return eps_u + (1 + w) * (eps_c - eps_u)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled VAE latents -> grey images in [-1, 1] (fp32: the decoder is a small share of the cost)."""
        images = self.vae.decode(latents / self.vae.config.scaling_factor).sample.float()
        return images.mean(1, keepdim=True) if images.shape[1] != 1 else images


def to_pairs(masks: torch.Tensor, images: torch.Tensor, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Upsample model-resolution outputs to ``size``; the mask is thresholded after bilinear upsampling."""
    if masks.shape[-1] != size:
        masks = F.interpolate(masks, size=(size, size), mode="bilinear", align_corners=False)
    if images.shape[-1] != size:  # latent PIG decodes its images at the VAE's resolution already
        images = F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False)
    imgs = to_uint8(images)
    msks = (masks > 0).to(torch.uint8).cpu().numpy()[:, 0]
    return list(zip(imgs, msks))


@register_generator("pig", default_checkpoint="pig-busi-128")
class PigGenerator(PairGenerator):
    """The registered "pig" generator: a PIGPipeline plus sampling defaults from synthaug.json."""

    required_files = (GENERATOR_INFO, "model_index.json", "model_x", "model_y", "scheduler")
    default_steps = 256

    def __init__(self, pipe: PIGPipeline, info: dict, steps: int | None = None, scheduler: str | None = None,
                 bf16: bool = True, mask_guidance: float | None = None):
        self.pipe = pipe
        self.info = info
        self.resolution = int(info.get("output_size", pipe.model_x.config.sample_size))
        self.steps = check_steps(steps) or int(info.get("default_steps", self.default_steps))
        self.scheduler = scheduler or info.get("default_scheduler", "ddim")
        self.bf16 = bf16
        self.mask_guidance = float(info.get("default_mask_guidance", 0.0) if mask_guidance is None else mask_guidance)
        if not self.mask_guidance >= 0:  # a real check: negative (or NaN) guidance would push away from the mask
            raise SynthaugError(f"mask guidance must be >= 0, got {self.mask_guidance:g}")
        self.conditions = frozenset({"label"}) if pipe.model_x.config.num_class_embeds else frozenset()  # as checkpoint_conditions

    @classmethod
    def from_pretrained(cls, path, device: str = "cpu", steps: int | None = None, scheduler: str | None = None,
                        bf16: bool = True, mask_guidance: float | None = None, **kwargs):
        path = Path(path)
        pipe = load_pipeline(PIGPipeline, path, device)
        return cls(pipe, read_generator_info(path), steps=steps, scheduler=scheduler, bf16=bf16,
                   mask_guidance=mask_guidance)

    @classmethod
    def checkpoint_conditions(cls, path: Path) -> frozenset[str]:
        config = read_json(Path(path) / "model_x" / "config.json", f"checkpoint {path}: file model_x/config.json is missing")
        return frozenset({"label"}) if config.get("num_class_embeds") else frozenset()

    def _sample_batch(self, seeds: Sequence[int], conditions: Sequence[Condition]) -> list[Pair]:
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        labels = [c.label for c in conditions]
        masks, images = self.pipe(len(seeds), generator=gens, num_inference_steps=self.steps,
                                  scheduler=self.scheduler, labels=labels, bf16=self.bf16, progress=False,
                                  mask_guidance=self.mask_guidance)
        meta = {"steps": self.steps, "scheduler": self.scheduler}
        if self.mask_guidance:
            meta.update(mask_guidance=self.mask_guidance)
        return [
            Pair(img, msk, {"label": lab, **meta})
            for (img, msk), lab in zip(to_pairs(masks, images, self.resolution), labels)
        ]


def save_pig(pipe: PIGPipeline, path: str | Path, info: dict, fp16: bool = True) -> Path:
    """Save a PIG checkpoint folder: diffusers layout (fp16 safetensors) + synthaug.json."""
    return save_pipeline(pipe, path, {"generator": "pig", **info}, fp16=fp16)
