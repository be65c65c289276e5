"""SCMG masks: a diffusers pipeline around the SPADE mask generator, and a sampler with the real priors.

``SCMGPipeline`` maps (types, boxes, seeds) to soft masks. ``ScmgMasks`` loads a
checkpoint folder with its ``synthaug.json``, which stores every training
mask's box per type: a box left unset is drawn from that empirical
distribution (and a type from the training shares), so masks land where
lesions do in the training images.

SCMG draws at 64 px; upsampled and thresholded, its outlines keep a pixel-scale
wiggle real outlines (drawn on full-size images) do not have: at 128 px 78% of its
masks were above the training curvature that marks the most irregular third of
BUSI. ``mask_smoothing`` (a Gaussian sigma in px per type, applied to the soft mask
before thresholding) removes it; ``fit_mask_smoothing`` picks the sigma per type
that gives the training share of irregular outlines.
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
from ..geometry import boundary_curvature, gaussian_blur
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

    def __init__(self, pipe: SCMGPipeline, info: dict, smoothing: float | dict | None = None):
        self.pipe, self.info = pipe, info
        self.prior = info["prior"]
        self.output_size = int(info.get("output_size", pipe.mask_generator.sample_size))
        self.smoothing = check_smoothing(info.get("mask_smoothing") if smoothing is None else smoothing)

    def binary(self, soft: torch.Tensor, labels: Sequence[str | None], threshold: float = 0.5) -> torch.Tensor:
        """Masks (B, 1, S, S) in {0, 1} from soft ones, each blurred first by its type's ``smoothing``."""
        return binarize(soft, labels, self.smoothing, threshold)

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
            masks.append(self.binary(soft, [c.label for c in chunk], threshold)[:, 0].to(torch.uint8).cpu().numpy())
        return np.concatenate(masks), conditions


def check_smoothing(smoothing) -> dict[str, float]:
    """``{type: sigma}`` from a number (every type) or a dict; empty means none. Sigmas are >= 0 px."""
    if smoothing in (None, 0, 0.0, {}):
        return {}
    if isinstance(smoothing, dict):
        out = {str(k): float(v) for k, v in smoothing.items()}
    else:
        try:
            out = {label: float(smoothing) for label in (*LABELS, "None")}
        except (TypeError, ValueError):
            raise SynthaugError(f"mask_smoothing must be a sigma in px or a {{type: sigma}} dict, not {smoothing!r}") from None
    if any(not np.isfinite(v) or v < 0 for v in out.values()):
        raise SynthaugError(f"mask_smoothing sigmas must be finite and >= 0 px, not {smoothing!r}")
    return out


def binarize(soft: torch.Tensor, labels: Sequence[str | None], smoothing: dict, threshold: float = 0.5) -> torch.Tensor:
    """Threshold after each mask's blur: its type's sigma, else the untyped one ("None": a checkpoint fitted
    without tumour types records its shares under no type)."""
    if not smoothing:  # the sampling default: no copy
        return (soft > threshold).float()
    sigmas = [smoothing.get(str(label), smoothing.get("None", 0.0)) for label in labels]
    out = soft.float().clone()
    for sigma in set(sigmas) - {0.0}:
        rows = [i for i, s in enumerate(sigmas) if s == sigma]
        out[rows] = gaussian_blur(soft[rows].float(), sigma)
    return (out > threshold).float()


SMOOTHING_GRID = tuple(x / 4 for x in range(9))  # 0 to 2 px


def fit_mask_smoothing(masks: ScmgMasks, targets: dict[str, tuple[float, float]], n: int = 256, seed: int = 0,
                       grid: Sequence[float] = SMOOTHING_GRID) -> dict[str, float]:
    """Per type, the sigma whose masks' share above a training curvature threshold is nearest the training
    share: ``targets`` maps a type to (curvature threshold, share of training masks above it). ``n`` masks
    per type are drawn once (the checkpoint's type boxes) and blurred with each sigma of ``grid``."""
    out = {}
    for label, (threshold, share) in targets.items():
        conds = masks.complete([Condition(None if label == "None" else label)] * n, seed)
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in pair_seeds(seed, n)]
        soft = masks.pipe([c.label for c in conds], [c.box for c in conds], generator=gens,
                          output_size=masks.output_size)
        gaps = []
        for sigma in grid:
            k = boundary_curvature(binarize(soft, [label] * n, {label: sigma})).numpy()
            gaps.append(abs(float(np.nanmean(k > threshold)) - share))
        out[label] = float(grid[int(np.argmin(gaps))])
    return out


def save_scmg(pipe: SCMGPipeline, path: str | Path, info: dict, fp16: bool = True) -> Path:
    return save_pipeline(pipe, path, {"generator": "scmg", **info}, fp16=fp16)
