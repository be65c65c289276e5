"""Helpers writing small bank folders for the synthaug.data tests (imported by name:
tests/ is not a package, so this module name must stay unique)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from synthaug.io.images import write_png


def random_pair(rng: np.random.Generator, size: int = 24):
    """A noise image and a rectangular lesion mask (uint8 {0, 1})."""
    image = rng.integers(0, 256, (size, size), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    y, x = rng.integers(2, size // 2, 2)
    mask[y : y + size // 3, x : x + size // 3] = 1
    return image, mask


def write_sample_folder(root: Path, n: int, labels=None, seed: int = 1) -> Path:
    """A folder as ``synthaug sample`` writes it: images/, masks/ (0/1 PNGs), pairs.json
    (``synthaug.sampling.sample_to_folder`` itself is exercised in test_mix.py)."""
    rng = np.random.default_rng(seed)
    meta = {}
    for i in range(n):
        name = f"pair_{i:05d}"
        image, mask = random_pair(rng, 32)
        write_png(root / "images" / f"{name}.png", image)
        write_png(root / "masks" / f"{name}.png", mask)
        meta[name] = {"seed": i, "condition": {"label": labels[i] if labels else None, "box": None}}
    (root / "pairs.json").write_text(json.dumps({"generator": "hand-written", "pairs": meta}))
    return root


def write_raw(parent: Path, n_real: int = 4, seed: int = 2) -> Path:
    """A converted nnU-Net v2 raw folder: ``n_real`` cases, alternately benign and malignant."""
    root = parent / "Dataset901_Mix"
    rng = np.random.default_rng(seed)
    metadata = {}
    for i in range(n_real):
        case = f"busi_{i:04d}"
        image, mask = random_pair(rng, 28)
        write_png(root / "imagesTr" / f"{case}_0000.png", image)
        write_png(root / "labelsTr" / f"{case}.png", mask)
        metadata[case] = {"label": ("benign", "malignant")[i % 2]}
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "US"}, "labels": {"background": 0, "lesion": 1},
        "numTraining": n_real, "file_ending": ".png"}))
    (root / "case_metadata.json").write_text(json.dumps({"cases": metadata}))
    return root


def write_expanded_raw(parent: Path, generator_dir: Path, n_real: int = 4, ratio: float = 0.75) -> Path:
    """A raw folder expanded by the real expander with the tiny test generator."""
    from synthaug.expand import expand

    root = write_raw(parent, n_real)
    expand(root, ratio=ratio, generator=generator_dir, seed=0)
    return root


def manifest_cases(root: Path) -> dict:
    return json.loads((root / "synthaug_manifest.json").read_text(encoding="utf-8"))["cases"]
