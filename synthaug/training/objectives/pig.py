"""PIG training (Algorithm 1) and its image-only DDPM baseline (the paper's Table 1 comparison).

Both chains use the same t, as in the paper. model_y's condition is the clean
mask x0 (the paper) or, with probability ``guider_cond_prob``, the guider's
detached one-step prediction x0_hat (as the official code does): sampling feeds
model_y x0_hat, so training on it too closes that train/test gap at no extra
cost (x0_hat comes from the guider forward pass already computed for its loss).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDIMPipeline, UNet2DModel

from ...models.unets import pixel_unet
from ...pipelines.pig import PIGPipeline, predict_x0, save_pig
from ...pipelines.saving import save_pipeline
from ...pipelines.schedulers import training_scheduler


class PigObjective:
    def __init__(
        self,
        resolution: int = 64,
        output_size: int = 128,
        unet: dict | None = None,
        class_conditional: bool = True,
        class_dropout: float = 0.1,
        guider_cond_prob: float = 0.5,
        num_train_timesteps: int = 1024,
        default_steps: int = 256,
        default_scheduler: str = "ddim",
        image_only: bool = False,
        hflip: bool = True,
    ):
        self.resolution, self.output_size = resolution, output_size
        self.class_dropout, self.guider_cond_prob, self.hflip = class_dropout, guider_cond_prob, hflip
        self.image_only = image_only
        self.noise = training_scheduler(num_train_timesteps)
        self.n_classes = 3 if class_conditional else None  # benign, malignant, null
        unet = dict(unet or {})
        in_ch = 1 if image_only else 2
        self.models = {"model_y": pixel_unet(in_ch, 1, resolution, num_class_embeds=self.n_classes, **unet)}
        if not image_only:
            self.models["model_x"] = pixel_unet(2, 1, resolution, num_class_embeds=self.n_classes, **unet)
        self.info = {"resolution": resolution, "output_size": output_size, "class_conditional": class_conditional,
                     "guider_cond_prob": guider_cond_prob, "default_steps": default_steps,
                     "default_scheduler": default_scheduler}

    def trainable(self):
        return self.models

    def init_from(self, path: Path) -> None:
        """Start from the weights of an exported checkpoint (e.g. continue a shipped one)."""
        for name, model in self.models.items():
            sub = "unet" if self.image_only else name
            model.load_state_dict(UNet2DModel.from_pretrained(str(path), subfolder=sub, dtype=torch.float32).state_dict())

    def _prepare(self, batch):
        """Batch -> (mask, image) in [-1, 1] at model resolution (area-downsampled: a soft mask), class ids."""
        img, msk = batch["image"].float(), batch["mask"].float()
        if img.shape[-1] != self.resolution:
            img = F.interpolate(img, size=(self.resolution,) * 2, mode="area")
            msk = F.interpolate(msk, size=(self.resolution,) * 2, mode="area")
        if self.hflip:
            flip = torch.rand(img.shape[0], device=img.device) < 0.5
            img = torch.where(flip.view(-1, 1, 1, 1), img.flip(-1), img)
            msk = torch.where(flip.view(-1, 1, 1, 1), msk.flip(-1), msk)
        cls = None
        if self.n_classes:
            cls = batch["label"].long().clone()
            cls[(cls < 0) | (torch.rand(cls.shape, device=cls.device) < self.class_dropout)] = self.n_classes - 1
        return msk * 2 - 1, img * 2 - 1, cls

    def loss(self, batch, models):
        x0, y0, cls = self._prepare(batch)
        b = x0.shape[0]
        t = torch.randint(0, self.noise.config.num_train_timesteps, (b,), device=x0.device)
        ny = torch.randn_like(y0)
        yt = self.noise.add_noise(y0, ny, t)
        if self.image_only:
            loss_y = F.mse_loss(models["model_y"](yt, t, class_labels=cls).sample.float(), ny)
            return loss_y, {"loss_y": loss_y.item()}
        nx = torch.randn_like(x0)
        xt = self.noise.add_noise(x0, nx, t)
        eps_x = models["model_x"](torch.cat([xt, yt], 1), t, class_labels=cls).sample.float()
        loss_x = F.mse_loss(eps_x, nx)
        cond = x0
        if self.guider_cond_prob > 0:
            alpha_bar = self.noise.alphas_cumprod.to(x0.device)[t]
            x0_hat = predict_x0(xt, eps_x.detach(), alpha_bar)
            use_hat = (torch.rand(b, device=x0.device) < self.guider_cond_prob).view(-1, 1, 1, 1)
            cond = torch.where(use_hat, x0_hat, x0)
        eps_y = models["model_y"](torch.cat([cond, yt], 1), t, class_labels=cls).sample.float()
        loss_y = F.mse_loss(eps_y, ny)
        return loss_x + loss_y, {"loss_x": loss_x.item(), "loss_y": loss_y.item()}

    def export(self, models, out: Path, info: dict) -> Path:
        if self.image_only:
            pipe = DDIMPipeline(unet=models["model_y"], scheduler=self.noise)
            return save_pipeline(pipe, out, {"pipeline": "DDIMPipeline", "baseline_of": "pig", **self.info, **info})
        pipe = PIGPipeline(models["model_x"], models["model_y"], self.noise)
        return save_pig(pipe, out, {**self.info, **info})
