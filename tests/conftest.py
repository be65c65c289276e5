"""Shared fixtures: the real data (fails in CI when missing) and a tiny test-only generator."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from synthaug.paths import data_root

# Tests use tiny models: one intra-op thread avoids OpenMP thrashing when the
# two cores are shared (CI runs the suite alone; sessions train beside it).
# Pinned, not defaulted: the commands' default thread count (synthaug.threads) follows OMP_NUM_THREADS, and
# tests that compare the bytes of a command's output with an in-process run's (pixels and the manifest's
# per-case thread count depend on it) failed when the caller exported OMP_NUM_THREADS=2.
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"
from synthaug.pipelines.base import GENERATOR_INFO, Pair, PairGenerator
from synthaug.pipelines.registry import register_generator


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        msg = f"{what} not found at {path}; set SYNTHAUG_DATA to the folder holding BUSI/ and STU/"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def busi_root() -> Path:
    """Folder holding Dataset_BUSI_with_GT/ and split.json."""
    return _need(data_root() / "BUSI", "BUSI")


@pytest.fixture(scope="session")
def stu_root() -> Path:
    return _need(data_root() / "STU", "STU")


# ----------------------------------------------------------------------------- tiny generator
@register_generator("tiny-test")
class TinyConvGenerator(PairGenerator):
    """Test-only: a randomly initialised 2-layer conv net mapping noise to (image, mask).

    It exercises the plumbing (registry, checkpoint folder, seeds, conditions)
    with real tensor code; it is never shipped.
    """

    conditions = frozenset({"label", "box"})
    resolution = 32

    def __init__(self, net: torch.nn.Module):
        self.net = net

    @staticmethod
    def build(seed: int = 0) -> torch.nn.Module:
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv2d(4, 2, 3, padding=1))

    def save_pretrained(self, path: Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file(self.net.state_dict(), str(path / "net.safetensors"))
        (path / GENERATOR_INFO).write_text(json.dumps({"generator": "tiny-test"}))
        return path

    required_files = (GENERATOR_INFO, "net.safetensors")

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        net = cls.build()
        net.load_state_dict(load_file(str(Path(path) / "net.safetensors")))
        return cls(net)

    @torch.no_grad()
    def _sample_batch(self, seeds, conditions):
        pairs = []
        for s, c in zip(seeds, conditions):
            g = torch.Generator().manual_seed(int(s))
            out = self.net(torch.randn(1, 1, self.resolution, self.resolution, generator=g))[0]
            img = ((out[0].tanh() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
            mask = (out[1] > 0).numpy().astype(np.uint8)
            if c.box is not None:  # honour the box so condition plumbing is testable
                x0, y0, x1, y1 = (int(round(v * self.resolution)) for v in c.box)
                mask[:] = 0
                mask[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)] = 1
            pairs.append(Pair(img, mask, {"label": c.label}))
        return pairs


@pytest.fixture(scope="session")
def tiny_generator_dir(tmp_path_factory) -> Path:
    """A checkpoint folder of the tiny test generator, loadable with create_generator(path)."""
    path = tmp_path_factory.mktemp("tiny_generator")
    return TinyConvGenerator(TinyConvGenerator.build()).save_pretrained(path)


@pytest.fixture(scope="session")
def tiny_pairs():
    """Eight 32 px cases with growing box lesions, both tumour types: enough for a few training steps."""
    from synthaug.data.datasets import PairDataset

    rng = np.random.default_rng(0)
    recs = []
    for i in range(8):
        img = rng.integers(0, 255, (32, 32), dtype=np.uint8)
        mask = np.zeros((32, 32), bool)
        mask[8:8 + 2 * i, 10:20] = True
        recs.append((img, mask, "benign" if i % 2 else "malignant", f"c{i}"))
    return PairDataset(recs)
