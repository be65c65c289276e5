"""BI-RADS echogenicity and margin words measured from an image and its lesion mask.

BUSI has no reports, and the BUS paper's prompts tie "well-defined, homogeneous" to
benign and "irregular, heterogeneous" to malignant. Both descriptors can instead be
measured per case, which lets a generator be asked for the faint, ill-defined lesions
real data holds (15% of BUSI train lesions are within 30 grey levels of their surround;
the first bus checkpoint made none).

- **echogenicity** from the lesion-to-surround contrast: mean grey level of a ring 2-8 px
  outside the mask minus the mean inside the mask eroded by 2 px (128 px images). Below
  ``ISO`` grey levels the lesion is *isoechoic* (hard to see), from ``MARKED`` up
  *markedly hypoechoic*, *hypoechoic* between.
- **margin**: *irregular* when the outline's curvature (Eq. 10, ``synthaug.geometry``) is
  above the training set's ``irregular_q`` quantile; else *indistinct* when the boundary
  sharpness (grey-level step across the boundary, 1-3 px each side, as a fraction of the
  lesion contrast) is below the training ``indistinct_q`` quantile; else *circumscribed*.

It sits beside ``text.py`` (the first checkpoints' prompt words) rather than in ``synthaug.data``:
the bus pipeline writes these prompts, and ``synthaug.data`` already imports the pipelines.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from ..errors import SynthaugError

ECHOGENICITY = ("isoechoic", "hypoechoic", "markedly hypoechoic")
MARGIN = ("circumscribed", "indistinct", "irregular")
KINDS = {"echo": ECHOGENICITY, "margin": MARGIN}
ISO, MARKED = 30.0, 80.0  # grey-level contrast bin edges (0..255 images)


def _band(mask: np.ndarray, inner: int, outer: int) -> np.ndarray:
    """Pixels between ``inner`` and ``outer`` px outside the mask (negative: inside)."""
    def grown(r: int) -> np.ndarray:
        if r == 0:
            return mask
        op = ndimage.binary_dilation if r > 0 else ndimage.binary_erosion
        return op(mask, iterations=abs(r), border_value=0)
    return grown(outer) & ~grown(inner)


def lesion_contrast(image: np.ndarray, mask: np.ndarray) -> float:
    """Ring (2-8 px outside) mean minus core (mask eroded by 2 px) mean; NaN when either is empty."""
    mask, image = np.asarray(mask) > 0, np.asarray(image, dtype=np.float64)
    core = ndimage.binary_erosion(mask, iterations=2, border_value=0)
    if not core.any():
        core = mask
    ring = _band(mask, 2, 8)
    if not core.any() or not ring.any():
        return float("nan")
    return float(image[ring].mean() - image[core].mean())


CONTRAST_SCALE = 100.0  # grey levels per unit of the contrast hint channel
EDGE_BAND = 3  # px each side of the outline: where ``boundary_sharpness`` measures the step
SHARPNESS_MAX = 2.0  # the edge channel's clip (a step above twice the contrast is noise on a faint lesion)


def edge_band(masks, width: int = EDGE_BAND):
    """(B, 1, H, W): 1 within ``width`` px of each mask's outline, inside or outside, else 0."""
    import torch.nn.functional as F

    k = 2 * width + 1
    return F.max_pool2d(masks, k, stride=1, padding=width) + F.max_pool2d(-masks, k, stride=1, padding=width)


EDGE_HINTS = ("band", "ramp")  # how the edge hint carries a lesion's boundary sharpness (``control_hint``)
RAMP_PX = 8  # the widest inward ramp of the "ramp" edge hint, in px (a lesion without any step at its outline)


def edge_ramp(masks, sharpness):
    """(B, 1, H, W) in [0, 1]: each mask with its outer ``w`` px ramped up from ``1 / w`` at the outline to 1,
    ``w = 1 + RAMP_PX * (1 - sharpness)`` (1: the binary mask). Why inward: in BUSI train an indistinct
    lesion's grey level ramps inside its outline (the 104 indistinct lesions' mean profile rises from 13% of
    the way to the surround 4 px inside to 97% 1 px outside; circumscribed ones step at the outline)."""
    import torch
    import torch.nn.functional as F

    masks = masks.float()
    depth, eroded = masks.clone(), masks
    for _ in range(RAMP_PX):  # depth: 1 on the mask's outer ring, 2 on the next, ...
        eroded = -F.max_pool2d(-eroded, 3, stride=1, padding=1)
        depth = depth + eroded
    sharp = torch.as_tensor(sharpness, dtype=torch.float32, device=masks.device).view(-1, 1, 1, 1)
    return (depth / (1 + RAMP_PX * (1 - sharp.clamp(0, 1)))).clamp(max=1)


def control_hint(masks, contrasts=None, sharpness=None, edge: str = "band"):
    """The ControlNet's hint (B, C, H, W) for masks (B, 1, H, W) in {0, 1}: the mask in [-1, 1]; with
    ``contrasts`` (B,) a second channel holding each lesion's lesion-to-surround contrast inside its mask
    (``contrast / CONTRAST_SCALE``, 0 outside); with ``sharpness`` (B,) too, each lesion's boundary sharpness,
    ``edge="band"``: as a third channel on the band where it is measured (``edge_band``, 0 elsewhere);
    ``edge="ramp"``: as the mask channel's inward ramp (``edge_ramp``), a spatial edge profile to copy, where
    the band's number was not followed (session 23). The mask says where the lesion is; the rest say how
    visible it is and how sharp its edge, per case, which a prompt word alone did not make the network follow."""
    import torch

    if edge not in EDGE_HINTS:
        raise SynthaugError(f"edge hint must be one of {EDGE_HINTS}, not {edge!r}")
    masks = masks.float()
    hint = masks * 2 - 1
    if contrasts is None:
        if sharpness is not None:
            raise SynthaugError("the edge hint comes with the contrast channel: give contrasts too")
        return hint

    def per_case(values):
        return torch.as_tensor(values, dtype=torch.float32, device=masks.device).view(-1, 1, 1, 1)

    channels = [hint, masks * per_case(contrasts) / CONTRAST_SCALE]
    if sharpness is not None and edge == "ramp":
        channels[0] = edge_ramp(masks, sharpness) * 2 - 1
    elif sharpness is not None:
        channels.append(edge_band(masks) * per_case(sharpness).clamp(0, SHARPNESS_MAX))
    return torch.cat(channels, 1)


def word_table(values, words: list[dict], labels: list, kind: str = "echo", digits: int = 1) -> dict:
    """A training measure (contrast by echogenicity word, sharpness by margin word) per tumour type and
    word, rounded to ``digits``: sampling draws from it (``draw_measured``)."""
    table: dict = {}
    for v, w, lab in zip(values, words, labels):
        if np.isfinite(v):
            table.setdefault(str(lab), {}).setdefault(w[kind], []).append(round(float(v), digits))
    return table


def draw_measured(table: dict, label: str, word: str, seed: int, salt: int = 35) -> float:
    """A training lesion's value of this type and word (any type's when this one has none); ``salt``
    keeps the draws of different measures of one pair independent."""
    pool = table.get(str(label), {}).get(word) or [c for t in table.values() for c in t.get(word, [])]
    if not pool:
        raise SynthaugError(f"no training lesion was {word}: this checkpoint cannot draw its hint value")
    return float(pool[int(np.random.default_rng([int(seed), salt]).integers(len(pool)))])


def quantile_map(hints, measured, levels: int = 21) -> dict:
    """How a hint turns into a measure, fitted on one sampling run: the hints written and the values measured on
    the pairs they made, matched quantile for quantile (``levels`` quantiles from 2.5% to 97.5%).

    A network that follows its hint weakly and unevenly (compressed tails, a bias) maps the hint's distribution
    onto a narrower, shifted one; matching quantiles, rather than fitting measured on hint, keeps the spread
    the per-lesion noise adds, so that ``invert_map`` of the wanted values gives pairs whose measured
    distribution is the wanted one. {"hint": [...], "measured": [...]}, both strictly increasing."""
    hints, measured = (np.asarray(v, dtype=np.float64) for v in (hints, measured))
    ok = np.isfinite(hints) & np.isfinite(measured)
    if ok.sum() < 2 * levels:
        raise SynthaugError(f"a quantile map of {levels} levels needs at least {2 * levels} measured pairs, "
                            f"not {int(ok.sum())}")
    q = np.linspace(0.025, 0.975, levels)
    h, m = np.quantile(hints[ok], q), np.quantile(measured[ok], q)
    keep = [0]
    for i in range(1, levels):  # a flat stretch (the network ignoring the hint there) cannot be inverted
        if h[i] > h[keep[-1]] + 1e-3 and m[i] > m[keep[-1]] + 1e-3:
            keep.append(i)
    if len(keep) < 3:
        raise SynthaugError("the measured values do not rise with the hint: the network does not follow it")
    return {"hint": [round(float(h[i]), 3) for i in keep], "measured": [round(float(m[i]), 3) for i in keep]}


def invert_map(values, qmap: dict) -> list[float]:
    """The hint for each wanted value (``quantile_map``): interpolated between the matched quantiles, and
    beyond them along the end segments (the tails a sampling run rarely reaches)."""
    h, m = np.asarray(qmap["hint"], dtype=np.float64), np.asarray(qmap["measured"], dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    out = np.interp(v, m, h)  # a quantile map has at least 3 points
    low, high = v < m[0], v > m[-1]
    out[low] = h[0] + (v[low] - m[0]) * (h[1] - h[0]) / (m[1] - m[0])
    out[high] = h[-1] + (v[high] - m[-1]) * (h[-1] - h[-2]) / (m[-1] - m[-2])
    return [float(x) for x in out]


def boundary_sharpness(image: np.ndarray, mask: np.ndarray) -> float:
    """Grey-level step across the boundary (1-3 px outside minus 1-3 px inside) over the lesion contrast.

    Near 1: the surround's level is reached right at the outline (a sharp margin); near 0: the
    grey level ramps over many pixels (an indistinct one). NaN for lesions without contrast."""
    mask, image = np.asarray(mask) > 0, np.asarray(image, dtype=np.float64)
    outside, inside = _band(mask, 1, 3), _band(mask, -3, -1)
    contrast = lesion_contrast(image, mask)
    if not outside.any() or not inside.any() or not np.isfinite(contrast) or abs(contrast) < 1e-6:
        return float("nan")
    return float((image[outside].mean() - image[inside].mean()) / max(contrast, 1.0))


PROFILE_REACH = 8  # px each side of the outline that ``edge_profile`` reads


def edge_profile(image: np.ndarray, mask: np.ndarray, reach: int = PROFILE_REACH) -> np.ndarray:
    """Mean grey level at each distance from the outline, ``-reach .. reach`` px (``2 * reach + 1`` values):
    0 is the mask's own outer ring, 1 the first ring outside, negative further inside; NaN where no pixel is."""
    mask, image = np.asarray(mask) > 0, np.asarray(image, dtype=np.float64)
    dist = np.rint(ndimage.distance_transform_edt(~mask)).astype(int)
    dist[mask] = 1 - np.rint(ndimage.distance_transform_edt(mask)[mask]).astype(int)
    return np.array([image[dist == k].mean() if (dist == k).any() else np.nan for k in range(-reach, reach + 1)])


def edge_rise(image: np.ndarray, mask: np.ndarray, reach: int = PROFILE_REACH) -> dict | None:
    """How a lesion's grey level rises to its surround across the outline: ``width``, the px from 10% to 90%
    of the way from the core (4-8 px inside) to the surround (4-8 px outside), and ``at_outline``, the share
    of that rise in the one step across the outline. BUSI train at 128 px: width 4 and 0.41 for circumscribed
    lesions, 5 and 0.16 for indistinct ones. None without 5 grey levels of contrast."""
    p = edge_profile(image, mask, reach)
    core, surround = np.nanmean(p[: reach - 3]), np.nanmean(p[reach + 4:])
    if not np.isfinite(core) or not np.isfinite(surround) or surround - core < 5:
        return None
    n = (p - core) / (surround - core)
    up10, up90 = np.argmax(n >= 0.1), np.argmax(n >= 0.9)
    step = n[reach + 1] - n[reach]
    return {"width": float(up90 - up10), "at_outline": float(step) if np.isfinite(step) else float("nan")}


def echo_word(contrast: float) -> str:
    if not np.isfinite(contrast) or contrast < ISO:
        return ECHOGENICITY[0]
    return ECHOGENICITY[2] if contrast >= MARKED else ECHOGENICITY[1]


@dataclass
class DescriptorRule:
    """Thresholds fitted on the training pairs, and the share of each (echo, margin) per tumour type."""

    curvature_threshold: float
    sharpness_threshold: float
    iso: float = ISO
    marked: float = MARKED
    irregular_q: float = 0.67
    indistinct_q: float = 0.33
    shares: dict = field(default_factory=dict)  # type -> {"echo|margin": share}

    @classmethod
    def fit(cls, images, masks, labels, irregular_q: float = 0.67, indistinct_q: float = 0.33) -> "DescriptorRule":
        curv = curvatures(masks)
        sharp = np.array([boundary_sharpness(i, m) for i, m in zip(images, masks)])
        if not np.isfinite(curv).any() or not np.isfinite(sharp).any():
            raise SynthaugError("no lesion to measure descriptors on: every mask is empty")
        rule = cls(float(np.nanquantile(curv, irregular_q)), float(np.nanquantile(sharp, indistinct_q)),
                   irregular_q=irregular_q, indistinct_q=indistinct_q)
        words = [rule.describe(i, m, k) for i, m, k in zip(images, masks, curv)]
        rule.shares = joint_shares(words, labels)
        return rule

    def describe(self, image, mask, curvature: float | None = None) -> dict:
        """{"echo": word, "margin": word, "contrast": grey levels, "sharpness": fraction, "curvature": ...}."""
        k = curvatures([mask])[0] if curvature is None else float(curvature)
        contrast, sharp = lesion_contrast(image, mask), boundary_sharpness(image, mask)
        return {"echo": echo_word(contrast), "margin": self.margin_word(k, sharp), "contrast": contrast,
                "sharpness": sharp, "curvature": k}

    def margin_word(self, curvature: float, sharpness: float = float("nan")) -> str:
        if np.isfinite(curvature) and curvature > self.curvature_threshold:
            return MARGIN[2]
        return MARGIN[1] if np.isfinite(sharpness) and sharpness < self.sharpness_threshold else MARGIN[0]

    def to_dict(self) -> dict:
        return asdict(self)


def curvatures(masks) -> np.ndarray:
    import torch

    from ..geometry import boundary_curvature

    stack = torch.from_numpy(np.stack([np.asarray(m) > 0 for m in masks]).astype(np.float32))[:, None]
    return boundary_curvature(stack).numpy().astype(np.float64)


def joint_shares(words: list[dict], labels) -> dict:
    """Per tumour type (str), the share of each "echo|margin" combination among its cases."""
    out: dict = {}
    for w, label in zip(words, labels):
        out.setdefault(str(label), {}).setdefault(f"{w['echo']}|{w['margin']}", 0)
        out[str(label)][f"{w['echo']}|{w['margin']}"] += 1
    return {k: {c: n / sum(v.values()) for c, n in sorted(v.items())} for k, v in sorted(out.items())}


def descriptor_prompt(label: str | None, echo: str, margin: str) -> str:
    """e.g. "benign tumor, isoechoic, with indistinct margin" (BI-RADS lexicon words)."""
    if echo not in ECHOGENICITY or margin not in MARGIN:
        raise SynthaugError(f"echogenicity must be one of {ECHOGENICITY}, margin one of {MARGIN}")
    return f"{label or 'breast'} tumor, {echo}, with {margin} margin"


def parse_mix(text: str | dict | None) -> dict | None:
    """A requested descriptor mix: ``"echo=isoechoic:0.5,hypoechoic:0.5;margin=indistinct"`` or a dict
    ``{"echo": {"isoechoic": 0.5, ...}, "margin": {...}}``; shares are normalised per kind."""
    if text is None or text == "":
        return None
    if isinstance(text, str):
        mix: dict = {}
        for part in filter(None, (p.strip() for p in text.split(";"))):
            kind, sep, items = part.partition("=")
            if not sep:
                raise SynthaugError(f"descriptor {part!r}: write KIND=WORD[:SHARE],..., e.g. echo=isoechoic:0.5")
            mix[kind.strip()] = {}
            for item in filter(None, (i.strip() for i in items.split(","))):
                word, _, share = item.partition(":")
                try:
                    mix[kind.strip()][word.strip()] = float(share) if share else 1.0
                except ValueError:
                    raise SynthaugError(f"descriptor share {share!r} is not a number") from None
        text = mix
    out = {}
    for kind, shares in text.items():
        if kind not in KINDS:
            raise SynthaugError(f"unknown descriptor kind {kind!r}: use {' or '.join(KINDS)}")
        bad = [w for w in shares if w not in KINDS[kind]]
        if bad:
            raise SynthaugError(f"unknown {kind} word(s) {bad}: use {', '.join(KINDS[kind])}")
        total = float(sum(shares.values()))
        if total <= 0 or any(v < 0 for v in shares.values()):
            raise SynthaugError(f"{kind} shares must be >= 0 and not all zero")
        out[kind] = {w: float(v) / total for w, v in shares.items()}
    return out
