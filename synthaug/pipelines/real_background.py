"""Real-background pairs: keep a real image's tissue and repaint only a new lesion.

Most of an ultrasound image is tissue the full-synthetic generator must
invent, and that is where it is least real. Here a real (image, mask) case
keeps its tissue: SCMG draws a new lesion mask (by default in a box near the
real lesion's, jittered in position, size and aspect), the region to repaint
is the dilated union of the old and the new lesion, and the bus LDM samples
with the new mask as ControlNet hint and the new type's prompt while the
latent outside that region is held on the real image's noised latent at
every step (blended latent diffusion, Avrahami et al. 2023). After decoding,
pixels outside the region are the real pixels exactly, joined to the
repainted ones by a seam feathered inwards; the output keeps the real
image's own size. No model is retrained: the shipped bus parts are reused.

``RealBackgroundGenerator`` is a ``PairGenerator``: pair k's background is a
pure function of its seed, and ``Pair.meta["background"]`` names the real
case it was built on (expand and the benchmark keep such pairs out of the
folds that validate that case).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..errors import SynthaugError
from ..io.images import mask_box, resize_image, resize_mask
from .base import LABELS, Condition, Pair, PairGenerator, to_uint8

_SALT = 0xBAC6_0D  # background and box draws stay independent of the generator's own use of the seed
PLACEMENTS = ("near", "anywhere")


@dataclass(frozen=True)
class Background:
    """A real case to build on: 8-bit grey image, its binary lesion mask, tumour type if known."""

    case_id: str
    image: np.ndarray
    mask: np.ndarray
    label: str | None = None


def jitter_box(box, rng: np.random.Generator, shift: float = 0.1, scale: tuple[float, float] = (0.8, 1.25),
               aspect: float = 0.2, margin: float = 0.02) -> tuple[float, float, float, float]:
    """A box near ``box``: centre moved by up to ``shift`` of the image, area scaled, aspect changed
    (log-uniform), kept inside [margin, 1 - margin]."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2 + rng.uniform(-shift, shift), (y0 + y1) / 2 + rng.uniform(-shift, shift)
    s = np.sqrt(rng.uniform(*scale))
    a = np.exp(rng.uniform(-aspect, aspect))
    w = min((x1 - x0) * s * a, 1 - 2 * margin)
    h = min((y1 - y0) * s / a, 1 - 2 * margin)
    cx = float(np.clip(cx, margin + w / 2, 1 - margin - w / 2))
    cy = float(np.clip(cy, margin + h / 2, 1 - margin - h / 2))
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def tissue_mask(image: np.ndarray, threshold: int = 20) -> np.ndarray:
    """Pixels of imaged tissue (not the black surround of the ultrasound fan), smoothed."""
    return ndimage.uniform_filter(image.astype(np.float32), size=9) > threshold


def repaint_region(old: np.ndarray, new: np.ndarray, radius: int) -> np.ndarray:
    """The pixels to repaint: the old and the new lesion, dilated by ``radius`` pixels."""
    union = np.asarray(old, bool) | np.asarray(new, bool)
    return ndimage.binary_dilation(union, iterations=max(int(radius), 0)) if radius > 0 else union


def feather(region: np.ndarray, keep_inside: np.ndarray, width: float) -> np.ndarray:
    """Blend weight of the generated image: 0 outside ``region`` (exactly real), rising to 1 over about
    ``width`` pixels inside it, and exactly 1 on ``keep_inside`` (the new lesion)."""
    if width <= 0:
        alpha = region.astype(np.float32)
    else:
        core = ndimage.binary_erosion(region, iterations=max(int(round(width / 2)), 1))
        alpha = ndimage.gaussian_filter(core.astype(np.float32), sigma=width / 2)
        alpha = np.clip(alpha * 2, 0, 1)  # reaches 1 a blur width inside the region
    alpha[~region] = 0
    alpha[keep_inside] = 1
    return alpha


class RealBackgroundGenerator(PairGenerator):
    """The bus generator in real-background mode: ``sample(seeds=..., conditions=...)`` as any generator.

    A condition's ``label`` is the new lesion's type (drawn at the SCMG training shares when None);
    its ``box`` is used only with ``placement="given"``; by default the box is the background
    lesion's box jittered (``"near"``) or a training box of that type whose centre lies on tissue
    (``"anywhere"``).
    """

    conditions = frozenset({"label"})

    def __init__(self, bus, backgrounds: Sequence[Background], placement: str = "near", dilate: int = 6,
                 feather_width: float = 4.0):
        if placement not in PLACEMENTS + ("given",):
            raise SynthaugError(f"unknown placement {placement!r}; choose one of {', '.join(PLACEMENTS)}, given")
        if not backgrounds:
            raise SynthaugError("real-background mode needs at least one real background case")
        if not hasattr(bus, "pipe") or not hasattr(bus.pipe, "vae"):
            raise SynthaugError("real-background mode needs the bus generator (a latent diffusion model with a VAE)")
        self.bus, self.backgrounds = bus, list(backgrounds)
        self.placement, self.dilate, self.feather_width = placement, int(dilate), float(feather_width)
        self.resolution = bus.resolution
        self.checkpoint_path = bus.checkpoint_path
        self.name = "bus"
        self.engine = bus.engine
        if placement == "given":
            self.conditions = frozenset({"label", "box"})

    @classmethod
    def from_pretrained(cls, path, backgrounds: Sequence[Background] = (), **kwargs):
        from .registry import create_generator

        opts = {k: kwargs.pop(k) for k in ("placement", "dilate", "feather_width") if k in kwargs}
        return cls(create_generator(path, **kwargs), backgrounds, **opts)

    # ------------------------------------------------------------------------- per-pair choices
    def background_for(self, seed: int) -> Background:
        """The background of the pair with seed ``seed`` (a pure function of the seed)."""
        rng = np.random.default_rng([int(seed), _SALT])
        return self.backgrounds[int(rng.integers(len(self.backgrounds)))]

    def target(self, seed: int, bg: Background, cond: Condition) -> Condition:
        """The new lesion's type and box for this pair."""
        rng = np.random.default_rng([int(seed), _SALT, 1])
        label = cond.label or self.bus.masks.complete([Condition()], int(seed))[0].label
        old = mask_box(bg.mask)
        if self.placement == "given" and cond.box is not None:
            return Condition(label, tuple(cond.box))
        if self.placement == "near" and old is not None:
            return Condition(label, jitter_box(old, rng))
        boxes = self.bus.masks.prior[label]["boxes"]
        tissue = tissue_mask(bg.image)
        h, w = tissue.shape
        for _ in range(20):  # a training box of this type whose centre is on tissue
            box = tuple(boxes[int(rng.integers(len(boxes)))])
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            if tissue[min(int(cy * h), h - 1), min(int(cx * w), w - 1)]:
                return Condition(label, box)
        return Condition(label, box)

    # ------------------------------------------------------------------------- sampling
    def _sample_batch(self, seeds: Sequence[int], conditions: Sequence[Condition]) -> list[Pair]:
        bus, size = self.bus, self.resolution
        bgs = [self.background_for(s) for s in seeds]
        targets = [self.target(s, bg, c) for s, bg, c in zip(seeds, bgs, conditions)]
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        soft = bus.masks.pipe([t.label for t in targets], [t.box for t in targets], generator=gens, output_size=size)
        new = bus.masks.binary(soft, [t.label for t in targets])
        old = torch.stack([torch.from_numpy(resize_mask(bg.mask, (size, size))).float()[None] for bg in bgs])
        images = torch.stack([torch.from_numpy(resize_image(bg.image, (size, size))).float()[None] for bg in bgs])
        region = torch.stack([torch.from_numpy(repaint_region(o[0].numpy(), n[0].numpy(), self.dilate))[None]
                              for o, n in zip(old, new)]).float()
        latent = bus.pipe.unet.config.sample_size
        keep = 1 - F.adaptive_max_pool2d(region, latent)  # a latent touching the region is repainted
        with torch.no_grad():
            vae = bus.pipe.vae
            real_latents = vae.encode(images / 127.5 - 1).latent_dist.mean * vae.config.scaling_factor
        prompts = [bus.prompt(n[0].numpy(), t.label, int(s)) for n, t, s in zip(new, targets, seeds)]
        words = ([bus.words(n[0].numpy(), t.label, int(s)) for n, t, s in zip(new, targets, seeds)]
                 if bus.contrast_table else None)
        labels = [t.label for t in targets]
        contrast = bus.contrasts(words, labels, seeds) if words else None
        sharpness = bus.sharpnesses(words, labels, seeds) if words else None
        out = bus.pipe(new, bus.text(prompts), bus.text([""]), guidance_scale=bus.guidance_scale,
                       num_inference_steps=bus.steps, scheduler=bus.scheduler, generator=gens, bf16=bus.bf16,
                       control_scale=bus.control_scale, keep_latents=real_latents, keep_mask=keep, engine=bus.runner,
                       contrast=bus.hint_contrasts(contrast), sharpness=bus.hint_sharpness(sharpness),
                       edge=bus.edge_hint)  # drawn as in training (a ramp checkpoint's ramp, not the band)
        generated = to_uint8(out)
        pairs = []
        for gen_img, n, bg, t, p in zip(generated, new, bgs, targets, prompts):
            pairs.append(self._compose(gen_img, n[0].numpy() > 0, bg, t, p))
        return pairs

    def _compose(self, generated: np.ndarray, new_mask: np.ndarray, bg: Background, target: Condition,
                 prompt: str) -> Pair:
        """Paste the repainted region into the real image at the real image's own size."""
        h, w = bg.image.shape
        scale = max(h, w) / self.resolution
        new_full = resize_mask(new_mask, (h, w))
        region = repaint_region(bg.mask, new_full, int(round(self.dilate * scale)))
        alpha = feather(region, ndimage.binary_dilation(new_full, iterations=max(int(round(2 * scale)), 1)),
                        self.feather_width * scale)
        gen_full = resize_image(generated, (h, w)).astype(np.float32)
        image = np.round(alpha * gen_full + (1 - alpha) * bg.image.astype(np.float32)).astype(np.uint8)
        image[~region] = bg.image[~region]  # exactly the real pixels outside the region
        meta = {"label": target.label, "box": [round(float(v), 6) for v in target.box], "prompt": prompt,
                "background": bg.case_id, "repainted_fraction": round(float(region.mean()), 4),
                "steps": self.bus.steps, "scheduler": self.bus.scheduler, "placement": self.placement}
        return Pair(image, new_full.astype(np.uint8), meta)

