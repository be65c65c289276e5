"""Generator options from the command line (pig_quality --variant "NAME:key=value,...", seg/cls
--sampler-option, gate_quality NAME=DIR@key=value) become create_generator kwargs."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import sampler_options  # noqa: E402


def test_variant_options_parse_to_typed_keyword_arguments():
    assert sampler_options("ablation=mask-only,guidance_scale=2.5,steps=3") == {
        "ablation": "mask-only", "guidance_scale": 2.5, "steps": 3}
    assert sampler_options("") == {}
