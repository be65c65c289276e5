"""Checkpoint folders: ``synthaug.json``, file integrity, loading errors and the content hash.

Integrity: saving a checkpoint records the sha256 of every file in it (but the
card and synthaug.json) under ``synthaug.json["files"]``; loading verifies
them first, so a missing, truncated or bit-flipped weight file stops with one
line naming the file instead of a traceback or silently black images. A
checkpoint without recorded hashes (older exports, hand-made folders) still
loads, after one warning per folder and a cheap structural probe of its
safetensors and JSON files; ``record_file_hashes(folder)`` adds them.

Below the generator base classes and the registry: it imports neither.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from contextlib import contextmanager
from pathlib import Path

from ..errors import SynthaugError
from ..io.images import read_json, sha256_file as file_sha256
from ..models.loading import quiet_loading
from .options import check_device

GENERATOR_INFO = "synthaug.json"
CARD_NAME = "README.md"
FILE_HASHES = "files"  # synthaug.json key: {relative path: sha256} of every file a loader may read


def read_generator_info(path: Path) -> dict:
    info_file = path / GENERATOR_INFO
    info = read_json(info_file, f"{path} is not a synthaug checkpoint folder: {GENERATOR_INFO} is missing")
    if "generator" not in info:
        raise SynthaugError(f"{info_file} does not name its generator (key 'generator')")
    return info


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
                          f"synthaug.pipelines.checkpoint.record_file_hashes({str(path)!r})", UserWarning, stacklevel=3)
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
    with load_errors(path), quiet_loading():
        return pipeline_cls.from_pretrained(str(path), dtype=torch.float32).to(device)


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
