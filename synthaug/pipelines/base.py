"""The generator protocol every paired generator implements: ``Condition``, ``Pair``, ``PairGenerator``.

A generator turns per-pair seeds (and optional conditions) into ``Pair``s: an
8-bit image, a binary mask and metadata. One seed per pair makes every pair
reproducible whatever the shard or worker that produced it (and, through
``sample_cases``, whatever the batch size: see below).

Generators register by name in ``pipelines.registry`` and load from checkpoint
folders (``pipelines.checkpoint``: synthaug.json, file hashes). This module
imports neither the registry nor any generator, so generator modules can import
it and register themselves without an import circle.

A pair is never emitted with an empty mask, nor one below ``min_mask_area`` while
MAX_RESAMPLES redraws can fix it: it is regenerated alone with seeds derived from
its own (``resample_seed``), so every pair stays a pure function of its seed and
condition; the redraw is recorded in ``Pair.meta["resampled"]``.

Batched bf16 kernels round differently for another batch shape, so bytes depend
on which pairs share a network batch; ``sample_cases`` (what expand, SyntheticMix
and ``synthaug sample`` use) runs fixed blocks of MICRO_BATCH case indices so
that case k depends on (checkpoint, seed, k, condition) alone. Bytes may still
differ across devices and torch/oneDNN builds.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import SynthaugError
# re-exported: generator modules and older callers import these names from here
from .checkpoint import (CARD_NAME, FILE_HASHES, GENERATOR_INFO, checkpoint_files, checkpoint_hash,  # noqa: F401
                         load_errors, load_pipeline, read_generator_info, record_file_hashes, verify_checkpoint,
                         write_generator_info)
from .options import DEVICE_TYPES, available_devices, check_device, check_steps  # noqa: F401

LABELS = ("benign", "malignant")
MIN_MASK_PIXELS = 16  # a lesion smaller than this (or than MIN_MASK_FRACTION of the image) is resampled
MIN_MASK_FRACTION = 0.005
MAX_RESAMPLES = 8  # redraws of one pair; each costs a batch-of-one generation
KEEP_BOX_REDRAWS = 2  # later redraws grow a requested box (x1.5 each): SCMG draws nothing in boxes under ~10 px
# Pairs per network batch in ``sample_cases``. Batched bf16 kernels round differently for another batch
# shape (up to 2 grey levels), so case k's bytes depend on it: it is part of every expand manifest identity.
MICRO_BATCH = 8


@dataclass(frozen=True)
class Condition:
    """What a caller may ask of a pair. ``box`` is (x0, y0, x1, y1) normalised to [0, 1]."""

    label: str | None = None
    box: tuple[float, float, float, float] | None = None

    def __post_init__(self):
        if self.label is not None and self.label not in LABELS:
            raise SynthaugError(f"unknown tumour type {self.label!r}; expected one of {LABELS}")
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
                raise SynthaugError(f"box {self.box} must be x0<x1, y0<y1 inside [0, 1]")

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["box"] is not None:
            d["box"] = [round(float(v), 6) for v in d["box"]]
        return d


@dataclass
class Pair:
    image: np.ndarray  # uint8, HxW
    mask: np.ndarray  # uint8 in {0, 1}, HxW
    meta: dict = field(default_factory=dict)


def to_uint8(images) -> np.ndarray:
    """(B, 1, H, W) tensor in [-1, 1] -> (B, H, W) uint8 grey images: how every sampler hands images out."""
    x = images.detach().float().clamp(-1, 1).cpu().numpy()[:, 0]
    return np.round((x + 1) * 127.5).astype(np.uint8)


def pair_seeds(seed: int, n: int, start: int = 0) -> list[int]:
    """Seeds of pairs ``start .. start+n-1`` of a run seeded with ``seed`` (stable, collision-free)."""
    return [int(seed) * 1_000_003 + i for i in range(start, start + n)]


# ----------------------------------------------------------------------------- mask area
def min_mask_area(shape: tuple[int, int], box=None) -> int:
    """Fewest lesion pixels a pair may have: MIN_MASK_PIXELS and MIN_MASK_FRACTION of the image, capped at
    a quarter of a requested box (real lesion boxes can be tiny, and rasterise smaller), never below 1."""
    h, w = shape
    need = max(MIN_MASK_PIXELS, MIN_MASK_FRACTION * h * w)
    if box is not None:
        x0, y0, x1, y1 = box
        need = min(need, 0.25 * (x1 - x0) * w * (y1 - y0) * h)
    return max(1, int(np.ceil(need)))


def redraw_condition(c: Condition, attempt: int) -> Condition:
    """The condition of redraw ``attempt``: the asked one, then (past KEEP_BOX_REDRAWS) its box grown about its
    centre, since a real lesion box can be too small for a mask generator to draw anything in."""
    if c.box is None or attempt <= KEEP_BOX_REDRAWS:
        return c
    f = 1.5 ** (attempt - KEEP_BOX_REDRAWS) / 2
    x0, y0, x1, y1 = c.box
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * f, (y1 - y0) * f
    return Condition(c.label, (max(0.0, cx - hw), max(0.0, cy - hh), min(1.0, cx + hw), min(1.0, cy + hh)))


def resample_seed(seed: int, attempt: int) -> int:
    """The seed of the ``attempt``-th redraw of pair ``seed``: derived, so a redraw is reproducible, and far
    from the small ``pair_seeds`` so it never repeats another pair."""
    state = np.random.SeedSequence([int(seed), int(attempt), 0x5EED]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) | (int(state[1]) >> 1)


class PairGenerator:
    """Base class: subclasses set ``conditions`` and implement ``_sample_batch`` and ``from_pretrained``."""

    name: str = ""
    conditions: frozenset[str] = frozenset()  # which Condition fields the generator uses
    resolution: int = 128
    required_files: tuple[str, ...] = (GENERATOR_INFO,)
    checkpoint_path: Path | None = None
    default_steps: int | None = None  # sampler steps when neither the call nor synthaug.json says (None: no sampler)
    engines: tuple[str, ...] = ("torch",)  # inference engines from_pretrained accepts (see pipelines.engines)
    engine: str = "torch"  # the engine identity this instance runs with, e.g. "openvino-2026.4.1"

    def _sample_batch(self, seeds: Sequence[int], conditions: Sequence[Condition]) -> list[Pair]:
        raise NotImplementedError

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs) -> "PairGenerator":
        raise NotImplementedError

    @classmethod
    def checkpoint_conditions(cls, path: Path) -> frozenset[str]:
        """Condition fields a checkpoint uses, read without loading weights (default: the class's)."""
        return frozenset(cls.conditions)

    @classmethod
    def checkpoint_default_steps(cls, path: Path) -> int | None:
        """The steps a checkpoint samples with when none are asked for: what "default" means in a manifest."""
        return read_generator_info(Path(path)).get("default_steps", cls.default_steps)

    def sample(
        self,
        n: int | None = None,
        *,
        seed: int = 0,
        seeds: Sequence[int] | None = None,
        conditions: Sequence[Condition | None] | None = None,
        batch_size: int = 16,
        progress: bool = False,
    ) -> list[Pair]:
        """Generate one pair per seed (``seeds``, or ``n`` seeds derived from ``seed``)."""
        if seeds is None:
            if n is None or n < 0:
                raise SynthaugError("give n >= 0 or an explicit list of seeds")
            seeds = pair_seeds(seed, n)
        seeds = list(seeds)
        conds = [c or Condition() for c in (conditions or [None] * len(seeds))]
        if len(conds) != len(seeds):
            raise SynthaugError(f"{len(conds)} conditions for {len(seeds)} seeds")
        out: list[Pair] = []
        bar = tqdm(total=len(seeds), desc=f"sampling {self.name}", unit="pair", disable=not progress)
        for i in range(0, len(seeds), batch_size):
            batch = self._sample_batch(seeds[i : i + batch_size], conds[i : i + batch_size])
            batch = self._resample_small_masks(batch, seeds[i : i + batch_size], conds[i : i + batch_size])
            for p, s, c in zip(batch, seeds[i : i + batch_size], conds[i : i + batch_size]):
                p.meta.setdefault("seed", int(s))
                p.meta.setdefault("generator", self.name)
                p.meta.setdefault("condition", c.to_dict())
            out.extend(batch)
            bar.update(len(batch))
        bar.close()
        return out

    def _resample_small_masks(self, pairs: list[Pair], seeds: Sequence[int], conds: Sequence[Condition]) -> list[Pair]:
        """Redraw, alone and with derived seeds, each pair whose mask is empty or below ``min_mask_area``
        (a benign label on an empty mask would teach a segmenter nothing true); the redraw is in its meta.
        After MAX_RESAMPLES redraws the largest non-empty mask is kept (flagged); never an empty one."""
        out = []
        for p, s, c in zip(pairs, seeds, conds):
            need = min_mask_area(p.mask.shape, c.box)
            first = area = int(np.count_nonzero(p.mask))
            best, attempt = (area, 0, p), 0
            while area < need and attempt < MAX_RESAMPLES:
                attempt += 1
                p = self._sample_batch([resample_seed(s, attempt)], [redraw_condition(c, attempt)])[0]
                area = int(np.count_nonzero(p.mask))
                best = max(best, (area, -attempt, p), key=lambda t: t[:2])  # largest, then earliest
            if area < need:
                area, used, p = best[0], -best[1], best[2]
                if area == 0:
                    raise SynthaugError(f"generator {self.name!r}: pair seed {s} ({c.to_dict()}) gave an empty mask in "
                                        f"{MAX_RESAMPLES + 1} draws; the condition asks for too small a lesion")
            else:
                used = attempt
            if attempt:
                p.meta["resampled"] = {"attempts": attempt, "seed": resample_seed(s, used) if used else int(s),
                                       "reason": f"mask area {first} px < {need} px",
                                       **({"box": redraw_condition(c, used).to_dict()["box"]}
                                          if redraw_condition(c, used) != c else {}),
                                       **({"kept_below_min": area} if area < need else {})}
            out.append(p)
        return out

    def checkpoint_hash(self) -> str:
        return checkpoint_hash(self.checkpoint_path) if self.checkpoint_path else "unsaved"


def case_block(k: int, micro_batch: int = MICRO_BATCH) -> int:
    """The fixed network batch ("block") case ``k`` is generated in: cases g*B .. g*B+B-1 form block g."""
    return int(k) // micro_batch


def sample_cases(gen: PairGenerator, seed: int, indices: Sequence[int], condition_of, *,
                 micro_batch: int = MICRO_BATCH, progress: bool = False) -> list[Pair]:
    """Pairs of cases ``indices`` of a run seeded ``seed`` (case k has seed ``pair_seeds(seed, 1, k)``
    and condition ``condition_of(k)``), so that case k's bytes depend on (checkpoint, seed, k, micro_batch)
    only: the networks always run whole blocks of ``micro_batch`` consecutive cases, even when fewer are
    asked for (a block of 8 costs about 2.5 single pairs on CPU), so the batch size, the shard or a
    ratio change that regenerates one case alone never changes a byte."""
    wanted = [int(k) for k in indices]
    wanted_set = set(wanted)
    got: dict[int, Pair] = {}
    blocks = sorted({case_block(k, micro_batch) for k in wanted})
    for g in tqdm(blocks, desc=f"sampling {gen.name}", unit="block", disable=not progress):
        ks = range(g * micro_batch, (g + 1) * micro_batch)
        pairs = gen.sample(seeds=pair_seeds(seed, micro_batch, start=ks[0]), conditions=[condition_of(k) for k in ks],
                           batch_size=micro_batch)
        got.update((k, p) for k, p in zip(ks, pairs) if k in wanted_set)
    return [got[k] for k in wanted]
