"""margin_probe.py reads asked and default margins with the generator's own rule and refuses a checkpoint
without descriptor prompts."""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import benchmarks.margin_probe as probe  # noqa: E402
from synthaug.models.descriptors import DescriptorRule  # noqa: E402
from synthaug.pipelines.base import Pair  # noqa: E402


class SquareLesions:
    """A stand-in generator: dark squares, blurred over several px when asked to be indistinct."""

    name = "squares"

    def __init__(self, soft=False, rule=DescriptorRule(curvature_threshold=10.0, sharpness_threshold=0.5)):
        self.soft, self.descriptor_rule = soft, rule

    def with_descriptors(self, mix):
        return SquareLesions(mix["margin"].get("indistinct", 0) > 0, self.descriptor_rule)

    def sample(self, seeds, conditions, batch_size):
        mask = np.zeros((64, 64), np.uint8)
        mask[20:44, 20:44] = 1
        image = np.where(mask > 0, 60.0, 150.0)
        if self.soft:
            image = ndimage.uniform_filter(image, 13)  # sharpness 0.41
        return [Pair(image.astype(np.uint8), mask, {}) for _ in seeds]


def test_read_margins_counts_the_words_the_rule_reads():
    sharp, soft = probe.read_margins(SquareLesions(), 8, 0), probe.read_margins(SquareLesions(True), 8, 0)
    assert sharp["read_as"]["circumscribed"] == 1.0 and soft["read_as"]["indistinct"] == 1.0
    assert soft["median_sharpness"] < 0.5 < sharp["median_sharpness"]


def test_main_writes_one_row_per_spec(tmp_path, monkeypatch):
    monkeypatch.setattr(probe, "create_generator", lambda path, **options: SquareLesions())
    monkeypatch.setattr(probe, "write_results", functools.partial(probe.write_results, out_dir=tmp_path))
    probe.main(["--generator", "a=x", "--generator", "b=x,edge_gain=2", "--n", "4", "--name", "p"])
    rows = json.loads((tmp_path / "p.json").read_text())["rows"]
    assert [r["options"] for r in rows] == [{}, {"edge_gain": 2}]
    assert rows[0]["asked_indistinct"]["read_as"]["indistinct"] == 1.0 and rows[0]["default"]["n"] == 8
    assert "| b | {'edge_gain': 2} | 100% |" in (tmp_path / "p.md").read_text()


def test_a_checkpoint_without_descriptor_prompts_is_refused(monkeypatch):
    monkeypatch.setattr(probe, "create_generator", lambda path, **options: SquareLesions(rule=None))
    with pytest.raises(SystemExit, match="not a checkpoint trained on descriptor prompts"):
        probe.main(["--generator", "a=x"])
