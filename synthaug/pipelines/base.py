"""The generator protocol every paired generator implements, and the registry.

A generator turns per-pair seeds (and optional conditions) into ``Pair``s: an
8-bit image, a binary mask and metadata. One seed per pair makes every pair
reproducible whatever the shard or worker that produced it (and, through
``sample_cases``, whatever the batch size: see below).

Generators register under a name (timm-style) and load from a checkpoint
folder holding a ``synthaug.json`` that names the generator, next to the
diffusers ``save_pretrained`` files of its models.

Integrity: saving a checkpoint records the sha256 of every file in it (but the
card and synthaug.json) under ``synthaug.json["files"]``; loading verifies
them first, so a missing, truncated or bit-flipped weight file stops with one
line naming the file instead of a traceback or silently black images. A
checkpoint without recorded hashes (older exports, hand-made folders) still
loads, after one warning per folder and a cheap structural probe of its
safetensors and JSON files; ``record_file_hashes(folder)`` adds them.

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

import hashlib
import json
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import SynthaugError
from ..io.images import read_json, sha256_file as file_sha256
from ..paths import checkpoints_root

LABELS = ("benign", "malignant")
GENERATOR_INFO = "synthaug.json"
CARD_NAME = "README.md"
FILE_HASHES = "files"  # synthaug.json key: {relative path: sha256} of every file a loader may read
MIN_MASK_PIXELS = 16  # a lesion smaller than this (or than MIN_MASK_FRACTION of the image) is resampled
MIN_MASK_FRACTION = 0.005
MAX_RESAMPLES = 8  # redraws of one pair; each costs a batch-of-one generation
KEEP_BOX_REDRAWS = 2  # later redraws grow a requested box (x1.5 each): SCMG draws nothing in boxes under ~10 px
# Pairs per network batch in ``sample_cases``. Batched bf16 kernels round differently for another batch
# shape (up to 2 grey levels), so case k's bytes depend on it: it is part of every expand manifest identity.
MICRO_BATCH = 8
DEVICE_TYPES = ("cpu", "cuda", "mps")


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


# ----------------------------------------------------------------------------- options
def check_steps(steps) -> int | None:
    """Sampler steps must be a positive integer (None: the checkpoint default); 0 or -5 would
    silently mean "default" or pure noise."""
    if steps is None:
        return None
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise SynthaugError(f"steps must be an integer >= 1 (sampler steps), got {steps!r}; "
                            "leave it unset for the checkpoint default")
    return int(steps)


def available_devices() -> list[str]:
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def check_device(device) -> str:
    """A torch device this machine has, checked before any work (``tpu9`` or ``cuda`` without a GPU
    would otherwise fail deep inside torch)."""
    import torch

    here = ", ".join(available_devices())
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        d = None
    if d is None or d.type not in DEVICE_TYPES:
        raise SynthaugError(f"unknown device {device!r}; valid choices: cpu, cuda, cuda:N, mps (available here: {here})")
    if d.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise SynthaugError(f"device {device!r} asked for but {why}; use --device cpu (available here: {here})")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise SynthaugError(f"device {device!r}: there are {torch.cuda.device_count()} GPU(s) "
                                f"(available here: {here})")
    if d.type == "mps" and "mps" not in here:
        raise SynthaugError(f"device {device!r}: Apple MPS is not available here (available here: {here})")
    return str(device)


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


# ----------------------------------------------------------------------------- integrity
def checkpoint_files(path: Path) -> list[Path]:
    """Files a loader may read: everything but the card, synthaug.json itself and hidden files."""
    path = Path(path)
    return sorted(f for f in path.rglob("*") if f.is_file() and f.name not in (CARD_NAME, GENERATOR_INFO)
                  and not any(part.startswith(".") for part in f.relative_to(path).parts))


def write_generator_info(path: str | Path, info: dict) -> Path:
    """Write ``synthaug.json`` with the sha256 of every file now in the folder: call it last when saving."""
    path = Path(path)
    info = {k: v for k, v in info.items() if k != FILE_HASHES}
    info[FILE_HASHES] = {f.relative_to(path).as_posix(): file_sha256(f) for f in checkpoint_files(path)}
    (path / GENERATOR_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    _verified.pop(path.resolve(), None)
    return path / GENERATOR_INFO


def record_file_hashes(path: str | Path) -> dict:
    """Add (or refresh) the file hashes of an existing checkpoint folder, e.g. one saved before they were
    recorded; only synthaug.json changes. Run it on a folder you trust: it blesses the files as they are."""
    path = Path(path)
    info = read_json(path / GENERATOR_INFO, f"{path} is not a synthaug checkpoint folder: {GENERATOR_INFO} is missing")
    write_generator_info(path, info)
    return json.loads((path / GENERATOR_INFO).read_text(encoding="utf-8"))[FILE_HASHES]


_verified: dict[Path, tuple] = {}  # folder -> stat signature of its files when last verified in this process
_warned_unhashed: set[Path] = set()


def _signature(path: Path, names) -> tuple:
    return tuple((n, (path / n).stat().st_size, (path / n).stat().st_mtime_ns) for n in sorted(names))


def verify_checkpoint(path: str | Path, info: dict | None = None) -> None:
    """Check every recorded file against its sha256 (one SynthaugError line naming the file); without
    recorded hashes, warn once and probe the files' structure. Unchanged folders are not rehashed."""
    path = Path(path)
    if info is None:
        info = read_json(path / GENERATOR_INFO, f"{path} is not a synthaug checkpoint folder: {GENERATOR_INFO} is missing")
    recorded = info.get(FILE_HASHES) if isinstance(info, dict) else None
    if recorded is None:
        if path.resolve() not in _warned_unhashed:
            _warned_unhashed.add(path.resolve())
            warnings.warn(f"checkpoint {path} records no file hashes ({GENERATOR_INFO} has no {FILE_HASHES!r}), so a "
                          "corrupt weight file cannot be detected; add them with "
                          f"synthaug.pipelines.base.record_file_hashes({str(path)!r})", UserWarning, stacklevel=3)
        _probe_files(path)
        return
    if not isinstance(recorded, dict):
        raise SynthaugError(f"checkpoint {path}: {GENERATOR_INFO} key {FILE_HASHES!r} must map file names to sha256")
    for name in sorted(recorded):
        if not (path / name).is_file():
            raise SynthaugError(f"checkpoint {path}: file {name} is missing; restore it (git checkout / copy the "
                                "checkpoint again / re-export it)")
    signature = _signature(path, recorded)
    if _verified.get(path.resolve()) == signature:
        return
    for name in sorted(recorded):
        if file_sha256(path / name) != recorded[name]:
            raise SynthaugError(f"checkpoint {path}: file {name} is corrupt (sha256 mismatch with {GENERATOR_INFO}); "
                                "restore it (git checkout / copy the checkpoint again / re-export it)")
    _verified[path.resolve()] = signature


def _probe_files(path: Path) -> None:
    """Parse every JSON file and every safetensors header: names the broken file of an unhashed checkpoint."""
    from safetensors import safe_open

    for f in checkpoint_files(path):
        name = f.relative_to(path).as_posix()
        try:
            if f.suffix == ".json":
                json.loads(f.read_text(encoding="utf-8"))
            elif f.suffix == ".safetensors":
                with safe_open(str(f), framework="pt") as st:
                    st.keys()
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
            raise SynthaugError(f"checkpoint {path}: file {name} is corrupt or truncated ({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


@contextmanager
def load_errors(path: Path):
    """Turn whatever a loader raises on a broken folder (OSError, JSON, safetensors, shape errors) into one
    SynthaugError line naming the checkpoint, and the file when a probe can find it."""
    try:
        yield
    except SynthaugError:
        raise
    except Exception as e:  # noqa: BLE001 - diffusers/safetensors/torch raise many types for one broken file
        _probe_files(Path(path))
        raise SynthaugError(f"checkpoint {path}: cannot load it ({_first_line(e)})") from None


def load_pipeline(pipeline_cls, path: str | Path, device: str = "cpu"):
    """``pipeline_cls.from_pretrained`` (fp32, on ``device``) after verifying the folder; load failures are
    one SynthaugError line."""
    import torch

    path = Path(path)
    verify_checkpoint(path)
    check_device(device)
    with load_errors(path):
        return pipeline_cls.from_pretrained(str(path), dtype=torch.float32).to(device)


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
    verify_checkpoint(path, info)
    return cls, path


def create_generator(name_or_path: str | Path, **kwargs) -> PairGenerator:
    """Load a generator by registry name (its shipped checkpoint) or from a checkpoint folder;
    ``steps`` and ``device`` are checked first, and any load failure is one SynthaugError line.
    ``engine`` ("auto", "torch", "openvino"; see ``pipelines.engines``) picks what runs the networks
    (None: "auto", OpenVINO on CPU when installed and supported); ``threads`` sets torch's threads
    (None: leave them), which an engine uses too."""
    from .engines import resolve_engine

    if "steps" in kwargs:
        kwargs["steps"] = check_steps(kwargs["steps"])
    if "device" in kwargs:
        check_device(kwargs["device"])
    engine, threads = kwargs.pop("engine", None), kwargs.pop("threads", None)
    if threads is not None:
        from ..threads import use_threads

        use_threads(threads)
    cls, path = resolve_checkpoint(name_or_path)
    engine = resolve_engine(engine, kwargs.get("device", "cpu"), cls.engines)
    if not engine.startswith("torch"):
        kwargs.update(engine=engine, threads=threads)
    with load_errors(path):
        gen = cls.from_pretrained(path, **kwargs)
    gen.checkpoint_path = path
    gen.engine = engine
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
