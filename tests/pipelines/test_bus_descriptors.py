"""Descriptor control of the bus generator (issue 34): default draws, a requested mix, clear refusals."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from synthaug import create_generator
from synthaug.cli import main
from synthaug.errors import SynthaugError
from synthaug.models.descriptors import DescriptorRule


@pytest.fixture(scope="module")
def bus():
    return create_generator("bus")


def round_mask():
    yy, xx = np.mgrid[:128, :128]
    return ((yy - 64) ** 2 + (xx - 64) ** 2 <= 20 ** 2).astype(np.uint8)


def test_the_first_checkpoint_refuses_descriptor_requests_in_one_line(bus, tmp_path):
    with pytest.raises(SynthaugError, match="without descriptor prompts"):
        bus.with_descriptors("echo=isoechoic")
    res = CliRunner().invoke(main, ["sample", "-n", "1", "--out", str(tmp_path / "s"), "--descriptor", "echo=isoechoic"])
    assert res.exit_code != 0 and "descriptor prompts" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "s").exists()


def test_words_follow_the_training_shares_or_the_requested_mix(bus):
    rule = DescriptorRule(curvature_threshold=10.0, sharpness_threshold=0.5,
                          shares={"benign": {"hypoechoic|circumscribed": 0.9, "isoechoic|indistinct": 0.1}})
    gen = bus.with_descriptors.__self__  # the loaded generator
    gen.descriptor_rule = rule
    drawn = [gen.words(round_mask(), "benign", s) for s in range(200)]
    assert 0.8 < np.mean([w["echo"] == "hypoechoic" for w in drawn]) < 0.97
    asked = gen.with_descriptors({"echo": {"isoechoic": 1.0}, "margin": {"indistinct": 1.0}})
    assert {tuple(asked.words(round_mask(), "benign", s).values()) for s in range(20)} == {("isoechoic", "indistinct")}
    assert asked.prompt(round_mask(), "benign", 0) == "benign tumor, isoechoic, with indistinct margin"
    assert gen.requested is None  # asking a copy leaves the original's default draws alone
