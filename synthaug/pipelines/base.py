"""The generator protocol every paired generator implements, and the registry.

A generator turns per-pair seeds (and optional conditions) into ``Pair``s: an
8-bit image, a binary mask and metadata. One seed per pair makes every pair
reproducible whatever the batch size, shard or worker that produced it.

Generators register under a name (timm-style) and load from a checkpoint
folder holding a ``synthaug.json`` that names the generator, next to the
diffusers ``save_pretrained`` files of its models.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import SynthaugError
from ..io.images import read_json
from ..paths import checkpoints_root

LABELS = ("benign", "malignant")
GENERATOR_INFO = "synthaug.json"
CARD_NAME = "README.md"


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


class PairGenerator:
    """Base class: subclasses set ``conditions`` and implement ``_sample_batch`` and ``from_pretrained``."""

    name: str = ""
    conditions: frozenset[str] = frozenset()  # which Condition fields the generator uses
    resolution: int = 128
    required_files: tuple[str, ...] = (GENERATOR_INFO,)
    checkpoint_path: Path | None = None

    def _sample_batch(self, seeds: Sequence[int], conditions: Sequence[Condition]) -> list[Pair]:
        raise NotImplementedError

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs) -> "PairGenerator":
        raise NotImplementedError

    @classmethod
    def checkpoint_conditions(cls, path: Path) -> frozenset[str]:
        """Condition fields a checkpoint uses, read without loading weights (default: the class's)."""
        return frozenset(cls.conditions)

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
            for p, s, c in zip(batch, seeds[i : i + batch_size], conds[i : i + batch_size]):
                p.meta.setdefault("seed", int(s))
                p.meta.setdefault("generator", self.name)
                p.meta.setdefault("condition", c.to_dict())
            out.extend(batch)
            bar.update(len(batch))
        bar.close()
        return out

    def checkpoint_hash(self) -> str:
        return checkpoint_hash(self.checkpoint_path) if self.checkpoint_path else "unsaved"


# ----------------------------------------------------------------------------- registry

_REGISTRY: dict[str, type[PairGenerator]] = {}
_DEFAULT_CHECKPOINTS: dict[str, str] = {}
_entry_points_loaded = False


def register_generator(name: str, default_checkpoint: str | None = None):
    """Class decorator: ``@register_generator("pig", default_checkpoint="pig-busi-128")``."""

    def deco(cls):
        cls.name = name
        _REGISTRY[name] = cls
        if default_checkpoint:
            _DEFAULT_CHECKPOINTS[name] = default_checkpoint
        return cls

    return deco


def _load_plugins() -> None:
    """Built-in generators register on import; third-party ones through the
    ``synthaug.generators`` entry-point group."""
    global _entry_points_loaded
    from . import _builtin  # noqa: F401  (registers built-in generators)

    if not _entry_points_loaded:
        _entry_points_loaded = True
        for ep in entry_points(group="synthaug.generators"):
            ep.load()


def default_checkpoint(name: str) -> Path | None:
    _load_plugins()
    sub = _DEFAULT_CHECKPOINTS.get(name)
    return checkpoints_root() / sub if sub else None


def list_generators() -> list[dict]:
    """Registered generators with their default checkpoint and whether it is installed."""
    _load_plugins()
    rows = []
    for name, cls in sorted(_REGISTRY.items()):
        ckpt = default_checkpoint(name)
        installed = bool(ckpt and (ckpt / GENERATOR_INFO).is_file())
        rows.append(
            {
                "name": name,
                "class": f"{cls.__module__}.{cls.__qualname__}",
                "conditions": sorted(cls.checkpoint_conditions(ckpt) if installed else cls.conditions),
                "default_checkpoint": str(ckpt) if ckpt else None,
                "installed": installed,
            }
        )
    return rows


def read_generator_info(path: Path) -> dict:
    info_file = path / GENERATOR_INFO
    info = read_json(info_file, f"{path} is not a synthaug checkpoint folder: {GENERATOR_INFO} is missing")
    if "generator" not in info:
        raise SynthaugError(f"{info_file} does not name its generator (key 'generator')")
    return info


def resolve_checkpoint(name_or_path: str | Path) -> tuple[type[PairGenerator], Path]:
    """The generator class and checkpoint folder a name or path stands for, checked but not loaded."""
    _load_plugins()
    path = Path(name_or_path)
    if str(name_or_path) in _REGISTRY and not path.exists():
        name = str(name_or_path)
        ckpt = default_checkpoint(name)
        if ckpt is None or not ckpt.exists():
            raise SynthaugError(
                f"generator {name!r} has no installed checkpoint (looked in {ckpt}); "
                f"train one with `synthaug train {name}` and pass its folder"
            )
        path = ckpt
    elif not path.exists():
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise SynthaugError(f"unknown generator {str(name_or_path)!r}: not a registered name ({known}) nor a folder")
    if not path.is_dir():
        raise SynthaugError(f"generator checkpoint {path} is not a folder")
    info = read_generator_info(path)
    cls = _REGISTRY.get(info["generator"])
    if cls is None:
        raise SynthaugError(f"{path} holds generator {info['generator']!r}, which is not installed")
    missing = [f for f in cls.required_files if not (path / f).exists()]
    if missing:
        raise SynthaugError(f"checkpoint folder {path} is missing {', '.join(missing)}")
    return cls, path


def create_generator(name_or_path: str | Path, **kwargs) -> PairGenerator:
    """Load a generator by registry name (its shipped checkpoint) or from a checkpoint folder."""
    cls, path = resolve_checkpoint(name_or_path)
    gen = cls.from_pretrained(path, **kwargs)
    gen.checkpoint_path = path
    return gen


def checkpoint_hash(path: str | Path) -> str:
    """Content hash of a checkpoint folder (every file but the model card)."""
    path = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and p.name != CARD_NAME):
        h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]
