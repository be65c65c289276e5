"""SCMG masks: a diffusers pipeline around the SPADE mask generator, and a sampler with the real priors.

``SCMGPipeline`` maps (types, boxes, seeds) to soft masks. ``ScmgMasks`` loads a
checkpoint folder with its ``synthaug.json``, which stores every training
mask's box per type: a box left unset is drawn from that empirical
distribution (and a type from the training shares), so masks land where
lesions do in the training images.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor

from ..errors import SynthaugError
from ..models.scmg import SCMGGenerator, box_maps
from ..io.images import read_json
from .base import GENERATOR_INFO, LABELS, Condition, load_pipeline, pair_seeds
from .saving import save_pipeline


class SCMGPipeline(DiffusionPipeline):
    def __init__(self, mask_generator: SCMGGenerator):
        super().__init__()
        self.register_modules(mask_generator=mask_generator)

    @torch.no_grad()
    def __call__(self, labels: Sequence[str], boxes, generator: torch.Generator | list | None = None,
                 output_size: int | None = None) -> torch.Tensor:
        """Soft masks (B, 1, S, S) in [0, 1]; ``boxes`` (B, 4) normalised ``[x0, y0, x1, y1]``."""
        G = self.mask_generator
        device = G.device
        ids = torch.tensor([LABELS.index(l) for l in labels], device=device)
        boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float32), device=device)
        z = randn_tensor((len(ids), G.config.latent_dim), generator=generator, device=device, dtype=G.dtype)
        masks = G(z, ids, box_maps(boxes, G.sample_size).to(G.dtype)).float()
        if output_size and output_size != masks.shape[-1]:
            masks = F.interpolate(masks, size=(output_size, output_size), mode="bilinear", align_corners=False)
        return masks


class ScmgMasks:
    """Binary lesion masks from an SCMG checkpoint, for given or drawn (type, box) conditions."""

    def __init__(self, pipe: SCMGPipeline, info: dict):
        self.pipe, self.info = pipe, info
        self.prior = info["prior"]
        self.output_size = int(info.get("output_size", pipe.mask_generator.sample_size))

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu") -> "ScmgMasks":
        path = Path(path)
        if not (path / GENERATOR_INFO).is_file():
            raise SynthaugError(f"{path} is not an SCMG checkpoint folder (no {GENERATOR_INFO})")
        info = read_json(path / GENERATOR_INFO, f"{path} is not an SCMG checkpoint folder (no {GENERATOR_INFO})")
        return cls(load_pipeline(SCMGPipeline, path, device), info)

    def complete(self, conditions: Sequence[Condition], seed: int) -> list[Condition]:
        """Fill each condition's missing type (training shares) and box (that type's training boxes).
        A single-class checkpoint (trained without tumour types) has one type in its prior: the only
        one it can be asked for."""
        rng = np.random.default_rng(seed)
        known = [l for l in LABELS if self.prior.get(l, {}).get("n")]
        shares = np.array([self.prior[l]["n"] for l in known], dtype=float)
        out = []
        for c in conditions:
            if c.label is not None and c.label not in known:
                raise SynthaugError(f"this mask generator was trained on {', '.join(known)} lesions only (a data set "
                                    f"without that many tumour types): it cannot make a {c.label} one; ask for no type")
            label = c.label or known[rng.choice(len(known), p=shares / shares.sum())]
            boxes = self.prior[label]["boxes"]
            out.append(Condition(label, c.box or tuple(boxes[rng.integers(len(boxes))])))
        return out

    def sample(self, n: int, seed: int = 0, conditions: Sequence[Condition] | None = None, label: str | None = None,
               batch_size: int = 64, threshold: float = 0.5) -> tuple[np.ndarray, list[Condition]]:
        """(masks uint8 (n, S, S) in {0, 1}, the conditions used); missing types and boxes are drawn."""
        conditions = list(conditions) if conditions is not None else [Condition(label)] * n
        if len(conditions) != n:
            raise SynthaugError(f"{len(conditions)} conditions for {n} masks")
        conditions = self.complete(conditions, seed)
        seeds, masks = pair_seeds(seed, n), []
        for i in range(0, n, batch_size):
            chunk = conditions[i:i + batch_size]
            gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds[i:i + batch_size]]
            soft = self.pipe([c.label for c in chunk], [c.box for c in chunk], generator=gens,
                             output_size=self.output_size)
            masks.append((soft[:, 0] > threshold).to(torch.uint8).cpu().numpy())
        return np.concatenate(masks), conditions


def save_scmg(pipe: SCMGPipeline, path: str | Path, info: dict, fp16: bool = True) -> Path:
    return save_pipeline(pipe, path, {"generator": "scmg", **info}, fp16=fp16)
