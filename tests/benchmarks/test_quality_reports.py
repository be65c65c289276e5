"""The generator-quality reports compare mask areas at the generated pairs' tumour-type mix and count
issue 16's targets per row (tiny, no data, no model)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import area_stats, matched_area, real_area_of  # noqa: E402
from benchmarks.pig_latent_curve import curve_table, targets_met  # noqa: E402


def square(side: int, size: int = 10) -> np.ndarray:
    m = np.zeros((size, size), bool)
    m[:side, :side] = True
    return m


def test_real_area_is_taken_at_the_generated_type_mix():
    # two small benign lesions per large malignant one, as in BUSI train
    real = area_stats([square(2), square(2), square(6)], ["benign", "benign", "malignant"])
    assert real["by_class"] == {"benign": pytest.approx(0.04), "malignant": pytest.approx(0.36)}
    assert real["mean"] == pytest.approx((0.04 + 0.04 + 0.36) / 3)
    balanced = matched_area(real, ["benign", "malignant"] * 3)
    assert balanced == pytest.approx(0.20) and balanced > real["mean"]
    assert matched_area(real, ["benign"] * 4) == pytest.approx(0.04)
    assert matched_area(real, [None, None]) is None  # an unconditional generator: no type to match
    assert matched_area(area_stats([square(2)]), ["benign"]) is None  # real areas measured without types
    assert real_area_of({"area_real_matched": None, "area_real": real}) == pytest.approx(real["mean"])
    assert real_area_of({"area_real_matched": balanced, "area_real": real}) == pytest.approx(0.20)


def row(step: int, w: float, dice: float, area: float, fd: float, matched: float | None = 0.111) -> dict:
    return {"train_steps": step, "train_minutes": 1.0, "options": {"mask_guidance": w} if w else {},
            "dice_real_segmenter_on_generated": {"mean": dice}, "area": {"mean": area},
            "area_real": {"mean": 0.098}, "area_real_matched": matched, "nonempty_binary_share": 1.0,
            "frechet_distance": fd, "kernel_distance": 0.2, "pairs_per_second": 1.0}


def test_targets_count_dice_area_at_the_type_mix_and_fd_against_bus():
    assert targets_met(row(10, 2, 0.76, 0.128, 153.6), bus_fd=160.2) == [True, True, True]
    # the same area against the plain (type-mismatched) real mean misses the +-30% band
    assert targets_met(row(10, 2, 0.76, 0.128, 153.6, matched=None), bus_fd=160.2) == [True, False, True]
    assert targets_met(row(10, 0, 0.50, 0.121, 170.0), bus_fd=160.2) == [False, True, False]
    assert targets_met(row(10, 0, 0.80, 0.121, 170.0), bus_fd=None) == [True, True]


def test_curve_table_rows_are_sorted_and_show_area_ratio_and_targets():
    refs = {"bus": {"dice": 0.93, "area": 0.129, "area_real": 0.111, "fd": 160.2, "kid": 0.22, "checkpoint": "b"}}
    md = curve_table([row(20, 2, 0.85, 0.135, 151.9), row(10, 0, 0.50, 0.121, 149.7)], refs)
    body = md[2:]
    assert body[0].startswith("| 10 | 1.0 | 0 | 0.500 | 0.121 (0.111) | +9% |") and body[0].endswith("| 2/3 |")
    assert body[1].startswith("| 20 | 1.0 | 2 | 0.850 | 0.135 (0.111) | +22% |") and body[1].endswith("| 3/3 |")
    assert body[2].startswith("| bus (b) | – | – | 0.930 | 0.129 (0.111) | +16% |")
