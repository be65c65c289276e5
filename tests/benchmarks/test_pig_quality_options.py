"""pig_quality.py's generator options: --variant "NAME:key=value,..." becomes create_generator kwargs."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.pig_quality import parse_options  # noqa: E402


def test_variant_options_parse_to_typed_keyword_arguments():
    assert parse_options("ablation=mask-only,guidance_scale=2.5,steps=3") == {
        "ablation": "mask-only", "guidance_scale": 2.5, "steps": 3}
    assert parse_options("") == {}
