"""PIG training (Algorithm 1) and its image-only DDPM baseline (the paper's Table 1 comparison).

Both chains use the same t, as in the paper. model_y's condition is the clean
mask x0 (the paper) or, with probability ``guider_cond_prob``, the guider's
detached one-step prediction x0_hat (as the official code does): sampling feeds
model_y x0_hat, so training on it too closes that train/test gap at no extra
cost (x0_hat comes from the guider forward pass already computed for its loss).
``mask_dropout`` replaces model_y's mask by the empty one (all -1, "no lesion") that often, so
sampling can guide the image toward its mask against that learned contrast (``mask_guidance``).

``latent: true`` (+ ``vae``: a trained AutoencoderKL folder) runs the image chain
on the frozen VAE's scaled latent and the mask chain at the latent grid (the mask
area-downsampled to a soft mask): a 32 x 32 step costs a tenth of a 128 px one,
so the same CPU hours buy ten times the training. ``resolution`` is then the
pixel size the VAE encodes; each case's posterior (and its mirror) and its
downsampled mask are cached once in ``prepare``, as the LDM objective does.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDIMPipeline, UNet2DModel

from ...errors import SynthaugError
from ...models.ldm import vae_factor
from ...models.unets import pixel_unet
from ...pipelines.loading import load_vae
from ...pipelines.pig import PIGPipeline, predict_x0, save_pig
from ...pipelines.saving import save_pipeline
from ...pipelines.schedulers import training_scheduler


def _repo_relative(path: str) -> str:
    """A recipe's ``checkpoints/...`` path from any working directory (the repo's own folder when not local)."""
    from ...paths import REPO_ROOT

    return str(REPO_ROOT / path) if not Path(path).exists() and (REPO_ROOT / path).exists() else str(path)


class PigObjective:
    def __init__(
        self,
        resolution: int = 64,
        output_size: int = 128,
        unet: dict | None = None,
        class_conditional: bool = True,
        class_dropout: float = 0.1,
        guider_cond_prob: float = 0.5,
        mask_dropout: float = 0.0,
        num_train_timesteps: int = 1024,
        default_steps: int = 256,
        default_scheduler: str = "ddim",
        default_mask_guidance: float = 0.0,
        image_only: bool = False,
        hflip: bool = True,
        latent: bool = False,
        vae: str | None = None,
    ):
        self.resolution, self.output_size = resolution, output_size
        self.class_dropout, self.guider_cond_prob, self.hflip = class_dropout, guider_cond_prob, hflip
        self.mask_dropout = mask_dropout
        self.image_only = image_only
        self.noise = training_scheduler(num_train_timesteps)
        self.n_classes = 3 if class_conditional else None  # benign, malignant, null
        unet = dict(unet or {})
        self.latent, self.vae, self.vae_path, self.cache = bool(latent), None, vae, {}
        img_ch, size = 1, resolution
        if self.latent:
            if image_only:
                raise SynthaugError("latent PIG has no image-only baseline: train it with latent: false")
            if not vae:
                raise SynthaugError("latent PIG needs model.vae: a trained VAE folder (synthaug train vae), "
                                    "e.g. checkpoints/vae-busi-128")
            vae = _repo_relative(vae)
            self.vae = load_vae(vae).requires_grad_(False).eval()
            img_ch, size = self.vae.config.latent_channels, self.latent_size
        self.size = size  # the grid both chains run on
        in_ch = img_ch if image_only else img_ch + 1
        self.models = {"model_y": pixel_unet(in_ch, img_ch, size, num_class_embeds=self.n_classes, **unet)}
        if not image_only:
            self.models["model_x"] = pixel_unet(in_ch, 1, size, num_class_embeds=self.n_classes, **unet)
        self.info = {"resolution": resolution, "output_size": output_size, "class_conditional": class_conditional,
                     "guider_cond_prob": guider_cond_prob, "mask_dropout": mask_dropout, "default_steps": default_steps,
                     "default_scheduler": default_scheduler, "default_mask_guidance": default_mask_guidance}
        if self.latent:
            self.info.update(latent=True, latent_size=size, vae=str(vae),
                             scaling_factor=float(self.vae.config.scaling_factor), mask_downsample="area")

    @property
    def latent_size(self) -> int:
        """The VAE's latent grid at ``resolution`` (each encoder level but the last halves the size)."""
        return self.resolution // vae_factor(self.vae)

    def trainable(self):
        return self.models

    def init_from(self, path: Path) -> None:
        """Start from the weights of an exported checkpoint (e.g. continue a shipped one)."""
        for name, model in self.models.items():
            sub = "unet" if self.image_only else name
            model.load_state_dict(UNet2DModel.from_pretrained(str(path), subfolder=sub, dtype=torch.float32).state_dict())

    @torch.no_grad()
    def prepare(self, dataset) -> None:
        """Latent PIG: encode every case (and its mirror) once with the frozen VAE; downsample its mask."""
        if not self.latent:
            return
        from torch.utils.data import DataLoader
        from tqdm.auto import tqdm

        from .vae import to_vae

        ids, mean, std, masks = [], [], [], []
        for batch in tqdm(DataLoader(dataset, batch_size=32), desc="encode latents", leave=False):
            x, m = batch["image"].float(), batch["mask"].float()
            if x.shape[-1] != self.resolution:
                x = F.interpolate(x, size=(self.resolution,) * 2, mode="area")
                m = F.interpolate(m, size=(self.resolution,) * 2, mode="area")
            b = x.shape[0]
            post = self.vae.encode(to_vae(torch.cat([x, x.flip(-1)]) * 2 - 1, self.vae)).latent_dist
            mean.append(torch.stack([post.mean[:b], post.mean[b:]], 1))
            std.append(torch.stack([post.std[:b], post.std[b:]], 1))
            small = F.interpolate(m, size=(self.size,) * 2, mode="area")
            masks.append(torch.stack([small, small.flip(-1)], 1))
            ids += list(batch["case_id"])
        self.cache = {"index": {c: k for k, c in enumerate(ids)}, "mean": torch.cat(mean), "std": torch.cat(std),
                      "mask": torch.cat(masks)}

    def _prepare_latent(self, batch):
        idx = torch.tensor([self.cache["index"][c] for c in batch["case_id"]])
        flip = (torch.rand(len(idx)) < 0.5 if self.hflip else torch.zeros(len(idx), dtype=torch.bool)).long()
        mean, std = self.cache["mean"][idx, flip], self.cache["std"][idx, flip]
        latents = (mean + std * torch.randn_like(std)) * self.vae.config.scaling_factor
        return self.cache["mask"][idx, flip] * 2 - 1, latents

    def _prepare(self, batch):
        """Batch -> (mask, image) at model resolution (area-downsampled: a soft mask, in [-1, 1]), class ids.

        Latent PIG: the image is the VAE's scaled latent sample, the mask downsampled to the latent grid."""
        if self.latent:
            msk, img = self._prepare_latent(batch)
            device = batch["image"].device
            msk, img = msk.to(device), img.to(device)
        else:
            img, msk = batch["image"].float(), batch["mask"].float()
            if img.shape[-1] != self.resolution:
                img = F.interpolate(img, size=(self.resolution,) * 2, mode="area")
                msk = F.interpolate(msk, size=(self.resolution,) * 2, mode="area")
            if self.hflip:
                flip = torch.rand(img.shape[0], device=img.device) < 0.5
                img = torch.where(flip.view(-1, 1, 1, 1), img.flip(-1), img)
                msk = torch.where(flip.view(-1, 1, 1, 1), msk.flip(-1), msk)
            msk, img = msk * 2 - 1, img * 2 - 1
        cls = None
        if self.n_classes:
            cls = batch["label"].long().clone()
            cls[(cls < 0) | (torch.rand(cls.shape, device=cls.device) < self.class_dropout)] = self.n_classes - 1
        return msk, img, cls

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
        if self.mask_dropout > 0:  # the empty mask ("no lesion"): the unconditional branch of mask guidance
            drop = (torch.rand(b, device=x0.device) < self.mask_dropout).view(-1, 1, 1, 1)
            cond = torch.where(drop, torch.full_like(cond, -1.0), cond)
        eps_y = models["model_y"](torch.cat([cond, yt], 1), t, class_labels=cls).sample.float()
        loss_y = F.mse_loss(eps_y, ny)
        return loss_x + loss_y, {"loss_x": loss_x.item(), "loss_y": loss_y.item()}

    def export(self, models, out: Path, info: dict) -> Path:
        if self.image_only:
            pipe = DDIMPipeline(unet=models["model_y"], scheduler=self.noise)
            return save_pipeline(pipe, out, {"pipeline": "DDIMPipeline", "baseline_of": "pig", **self.info, **info})
        pipe = PIGPipeline(models["model_x"], models["model_y"], self.noise, vae=self.vae)
        return save_pig(pipe, out, {**self.info, **info})
