"""The generator registry (timm's ``register_model`` style): generators register into it by name.

``@register_generator("bus", default_checkpoint="bus-busi-128")`` on a ``PairGenerator`` subclass adds
it; ``create_generator(name or folder)`` loads one. The registry imports no generator module: the
built-in generators are named in ``BUILTIN_MODULES`` and imported by name on first use, and
third-party ones come through the ``synthaug.generators`` entry-point group, so the generator
modules import this one and nothing imports back (no import circle; tests/test_layering.py).
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path

from ..errors import SynthaugError
from ..paths import checkpoints_root
from .base import PairGenerator
from .checkpoint import GENERATOR_INFO, load_errors, read_generator_info, verify_checkpoint
from .options import check_device, check_steps

# the generators that ship with synthaug: the module whose import registers each
BUILTIN_MODULES = {"pig": "synthaug.pipelines.pig", "bus": "synthaug.pipelines.bus"}

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
    """Built-in generators register when their module is imported (by name, here); third-party ones
    through the ``synthaug.generators`` entry-point group."""
    global _entry_points_loaded
    for module in BUILTIN_MODULES.values():
        importlib.import_module(module)
    if not _entry_points_loaded:
        _entry_points_loaded = True
        for ep in entry_points(group="synthaug.generators"):
            ep.load()


def _known_names() -> set[str]:
    """Generator names known without importing any generator: built-in, registered, and entry-point names."""
    return set(BUILTIN_MODULES) | set(_REGISTRY) | {ep.name for ep in entry_points(group="synthaug.generators")}


def _raise_unknown(name_or_path, known) -> None:
    names = ", ".join(sorted(known)) or "none"
    raise SynthaugError(f"unknown generator {str(name_or_path)!r}: not a registered name ({names}) nor a folder")


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


def resolve_checkpoint(name_or_path: str | Path) -> tuple[type[PairGenerator], Path]:
    """The generator class and checkpoint folder a name or path stands for, checked but not loaded."""
    path = Path(name_or_path)
    if not path.exists() and str(name_or_path) not in _known_names():
        _raise_unknown(name_or_path, _known_names())  # before any generator module loads (seconds: torch, diffusers)
    _load_plugins()
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
        _raise_unknown(name_or_path, _REGISTRY)
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
