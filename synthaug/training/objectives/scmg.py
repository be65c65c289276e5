"""SCMG training (Pan et al., MedIA 2025, Eqs. 10-16): a SPADE GAN on lesion masks.

Each step updates D, then G, on one batch of real masks with their types and
bounding boxes; G draws fresh latents for the same types and boxes.
  L_D = L_adv^D + L_cls^D     (real/fake BCE; type cross-entropy on real masks)
  L_G = L_adv^G + w_cur L_cur (non-saturating BCE; L_cur = |kappa(G) - kappa_target[type]|)
The per-type curvature targets are measured on the user's own training masks
(``prepare``) at ``curvature_size`` (default: the output size, where masks are
used and judged; G's output is upsampled bilinearly to it for L_cur), and stored
with the checkpoint next to the empirical per-type box distribution sampling
draws from.
``curvature_weight: 0`` is the paper's ablation without L_cur.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import SynthaugError
from ...geometry import boundary_curvature, mask_boxes
from ...models.scmg import DualBranchDiscriminator, SCMGGenerator, box_maps
from ...pipelines.base import LABELS
from ...pipelines.scmg import SCMGPipeline, save_scmg


class ScmgObjective:
    def __init__(self, resolution: int = 64, output_size: int = 128, generator: dict | None = None,
                 discriminator: dict | None = None, curvature_weight: float = 1.0, curvature_sigma: float = 1.0,
                 curvature_size: int | None = None,
                 lr_g: float = 2e-4, lr_d: float = 1e-4, betas: tuple = (0.5, 0.999), hflip: bool = True,
                 single_class: bool | None = None):
        self.resolution, self.output_size, self.hflip = resolution, output_size, hflip
        # Data without tumour types trains one class: every lesion as class 0 (LABELS[0]), so the exported
        # prior holds one box distribution and sampling draws that class only. None: decided in prepare.
        self.single_class = single_class
        self.curvature_weight, self.curvature_sigma = curvature_weight, curvature_sigma
        self.curvature_size = curvature_size or output_size
        self.lr_g, self.lr_d, self.betas = lr_g, lr_d, tuple(betas)
        g = dict(generator or {})
        blocks = g.setdefault("block_out_channels", [128, 64, 32, 16])
        g.setdefault("base_size", resolution // 2 ** len(blocks))
        self.models = {"generator": SCMGGenerator(num_classes=len(LABELS), **g),
                       "discriminator": DualBranchDiscriminator(num_classes=len(LABELS), **(discriminator or {}))}
        if self.models["generator"].sample_size != resolution:
            raise SynthaugError(f"generator makes {self.models['generator'].sample_size} px masks, recipe asks "
                                f"{resolution}: base_size x 2^blocks must equal the resolution")
        self.ema_models = ["generator"]
        self.find_unused_parameters = True  # G's step leaves D's type head without gradients (several processes)
        self.targets: torch.Tensor | None = None
        self.prior: dict = {}

    def trainable(self):
        return self.models

    def optimizer_groups(self):
        return {"D": {"models": ["discriminator"], "lr": self.lr_d, "betas": self.betas},
                "G": {"models": ["generator"], "lr": self.lr_g, "betas": self.betas}}

    def init_from(self, path: Path) -> None:
        self.models["generator"].load_state_dict(
            SCMGGenerator.from_pretrained(str(path), subfolder="mask_generator").state_dict())

    # ------------------------------------------------------------------------- data
    def _typed_lesions(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's non-empty masks with a tumour type, at their own size, and their class ids."""
        m, labels = batch["mask"].float(), torch.as_tensor(batch["label"]).long()
        if self.single_class:
            labels = torch.zeros_like(labels)
        keep = (m.flatten(1).amax(1) > 0) & (labels >= 0)
        if not bool(keep.any()):
            raise SynthaugError("SCMG trains on lesion masks with a tumour type (benign/malignant); "
                                "this batch has none: check the dataset's masks and case_metadata labels")
        return m[keep], labels[keep]

    def _masks(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Non-empty tumour-typed masks of the batch, area-downsampled to the training resolution."""
        m, labels = self._typed_lesions(batch)
        if m.shape[-1] != self.resolution:
            m = F.interpolate(m, size=(self.resolution,) * 2, mode="area")
        return m, labels

    def _curvature(self, masks: torch.Tensor) -> torch.Tensor:
        if masks.shape[-1] != self.curvature_size:
            masks = F.interpolate(masks, size=(self.curvature_size,) * 2, mode="bilinear", align_corners=False)
        return boundary_curvature(masks, sigma=self.curvature_sigma)

    def prepare(self, dataset) -> None:
        """Per-type curvature targets and the per-type box distribution of the training masks."""
        from torch.utils.data import DataLoader

        if self.single_class is None:  # no case with a type anywhere: one class, not "no data"
            codes = dataset.labels if hasattr(dataset, "labels") else [int(b["label"]) for b in dataset]
            self.single_class = not any(c >= 0 for c in codes)
        masks, labels, kappa = [], [], []
        for batch in DataLoader(dataset, batch_size=64):
            try:
                full, lab = self._typed_lesions(batch)
            except SynthaugError:
                continue
            m = F.interpolate(full, size=(self.resolution,) * 2, mode="area") if full.shape[-1] != self.resolution else full
            if full.shape[-1] != self.curvature_size:
                full = F.interpolate(full, size=(self.curvature_size,) * 2, mode="area").gt(0.5).float()
            masks.append(m)
            labels.append(lab)
            kappa.append(boundary_curvature(full, sigma=self.curvature_sigma))
        if not masks:
            raise SynthaugError("no lesion masks with a tumour type in the training data: SCMG cannot train")
        masks, labels, kappa = torch.cat(masks), torch.cat(labels), torch.cat(kappa)
        boxes = mask_boxes(masks)
        targets, prior = [], {}
        for code, name in enumerate(LABELS):
            sel = labels == code
            k = kappa[sel & ~kappa.isnan()]
            targets.append(float(k.mean()) if k.numel() else float(kappa.nanmean()))
            prior[name] = {"n": int(sel.sum()), "curvature_mean": targets[-1],
                           "curvature_std": float(k.std()) if k.numel() > 1 else 0.0,
                           "boxes": np.round(boxes[sel].numpy(), 4).tolist()}
        self.targets = torch.tensor(targets)
        self.prior = prior

    # ------------------------------------------------------------------------- losses
    def loss(self, batch, models, group: str):
        real, labels = self._masks(batch)
        if self.hflip:
            flip = (torch.rand(real.shape[0], device=real.device) < 0.5).view(-1, 1, 1, 1)
            real = torch.where(flip, real.flip(-1), real)
        boxes = box_maps(mask_boxes(real), self.resolution).to(real.dtype)
        G, D = models["generator"], models["discriminator"]
        z = torch.randn(real.shape[0], getattr(G, "module", G).config.latent_dim, device=real.device)  # DDP-wrapped
        if group == "D":
            with torch.no_grad():
                fake = G(z, labels, boxes)
            adv_real, cls_real = D(real, boxes)
            adv_fake, _ = D(fake, boxes)
            l_adv = (F.binary_cross_entropy_with_logits(adv_real.float(), torch.ones_like(adv_real.float()))
                     + F.binary_cross_entropy_with_logits(adv_fake.float(), torch.zeros_like(adv_fake.float())))
            l_cls = F.cross_entropy(cls_real.float(), labels)
            return l_adv + l_cls, {"d_adv": l_adv.item(), "d_cls": l_cls.item()}
        fake = G(z, labels, boxes)
        adv_fake, _ = D(fake, boxes)
        l_adv = F.binary_cross_entropy_with_logits(adv_fake.float(), torch.ones_like(adv_fake.float()))
        kappa = self._curvature(fake.float())
        target = self.targets.to(real.device)[labels]
        ok = ~kappa.isnan()
        l_cur = (kappa[ok] - target[ok]).abs().mean() if bool(ok.any()) else kappa.new_zeros(())
        loss = l_adv + self.curvature_weight * l_cur if self.curvature_weight else l_adv
        return loss, {"g_adv": l_adv.item(), "g_cur": l_cur.item()}

    def export(self, models, out: Path, info: dict) -> Path:
        pipe = SCMGPipeline(mask_generator=models["generator"])
        meta = {"resolution": self.resolution, "output_size": self.output_size,
                "curvature_weight": self.curvature_weight, "curvature_sigma": self.curvature_sigma,
                "curvature_size": self.curvature_size, "single_class": bool(self.single_class),
                "prior": self.prior, **info}
        return save_scmg(pipe, out, meta)
