"""Contrast calibration of a contrast-hint bus checkpoint: hints that make the wanted lesion contrasts.

The ControlNet follows its contrast hint weakly and unevenly (measured: slope 0.92 after a hand-tuned linear
stretch, yet the faint tail 7 grey levels too faint and the bright tail 8 too dim). Rather than search gains and
offsets by eye, ``calibrate_contrast`` samples pairs, measures each lesion's contrast the way training
measured it, and fits the quantile map from hint to measure (``models.descriptors.quantile_map``);
``calibrated_checkpoint`` writes a copy of the checkpoint (same weight files) whose default hints go through
it. The calibration holds for the sampling settings it was fitted with, so they become the copy's defaults.
"""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np

from ..errors import SynthaugError
from ..models.descriptors import lesion_contrast, quantile_map
from ..precision import machine
from .base import CARD_NAME, GENERATOR_INFO, Condition, sample_cases
from .bus import BusGenerator
from .checkpoint import write_generator_info


MAP_SOURCE = "a contrast_calibration map"  # ``fitted_on`` of a calibration whose source was calibrated already


def calibrate_contrast(gen: BusGenerator, n: int = 448, seed: int = 0, rounds: int = 1,
                       progress: bool = True) -> dict:
    """Sample ``n`` pairs (types and boxes from the training priors, words at the training shares), measure
    each lesion's contrast and fit the map from the hint written to the contrast made. Each further round
    samples anew (seed + round) through the last map and fits the map again on those pairs: the per-lesion
    noise is not the same at every hint, so a map fitted where the hints will be is the closer one. The
    wanted and measured 10th / 50th / 90th percentiles of every round are kept."""
    if not gen.contrast_table:
        raise SynthaugError("this bus checkpoint has no contrast hint: there is nothing to calibrate")
    if rounds < 1:
        raise SynthaugError(f"calibration rounds must be at least 1, not {rounds}")
    fitted_on = (MAP_SOURCE if gen.contrast_map else
                 {"contrast_gain": gen.contrast_gain, "contrast_offset": gen.contrast_offset})
    history = []
    for r in range(rounds):
        pairs = sample_cases(gen, seed + r, range(n), lambda k: Condition(), progress=progress)
        wanted = [p.meta["contrast_requested"] for p in pairs]
        measured = [lesion_contrast(p.image, p.mask) for p in pairs]
        history.append({"seed": seed + r, "wanted_q10_q50_q90": _percentiles(wanted),
                        "measured_q10_q50_q90": _percentiles(measured)})
        qmap = quantile_map(gen.hint_contrasts(wanted), measured)
        gen = copy.copy(gen)
        gen.contrast_map = qmap
    return {"map": qmap, "n": n, "seed": seed, "rounds": history, "fitted_on": fitted_on}


def _percentiles(values) -> list[float]:
    v = np.asarray(values, dtype=np.float64)
    return [round(float(q), 1) for q in np.percentile(v[np.isfinite(v)], [10, 50, 90])]


def calibrated_checkpoint(src: str | Path, out: str | Path, n: int = 448, seed: int = 0, rounds: int = 1,
                          progress: bool = True, **options) -> Path:
    """A copy of ``src`` at ``out`` whose contrast hints go through a map fitted now (``calibrate_contrast``),
    with ``options`` (``mask_smoothing``, ``match_margin``, ``edge_gain``, ...) as its sampling defaults. ``src`` is not
    touched; ``out`` must not exist and appears whole or not at all."""
    src, out = Path(src), Path(out)
    if out.exists():
        raise SynthaugError(f"{out} exists: give a new folder for the calibrated checkpoint")
    t0 = time.time()
    gen = BusGenerator.from_pretrained(src, **options)
    calibration = calibrate_contrast(gen, n, seed, rounds, progress)
    calibration.update(minutes=round((time.time() - t0) / 60, 1), machine=machine())
    info = json.loads((src / GENERATOR_INFO).read_text(encoding="utf-8"))
    info["contrast_calibration"] = calibration
    if gen.masks.smoothing:
        info["mask_smoothing"] = gen.masks.smoothing
    info["match_margin"] = gen.match_margin
    if gen.sharpness_table:  # the edge hint's stretch changes the lesions the map was fitted on
        info["edge_gain"] = gen.edge_gain
    info["calibrated_from"] = str(src)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    write_generator_info(tmp, info)
    card = tmp / CARD_NAME
    before = card.read_text(encoding="utf-8") if card.is_file() else ""
    card.write_text(calibration_card(before, out.name, src, info), encoding="utf-8")
    try:
        if out.exists():  # another run finished first: its copy stays, this one goes
            raise FileExistsError(out)
        tmp.rename(out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SynthaugError(f"{out} appeared while calibrating: give a new folder") from None
    return out


def calibration_card(before: str, name: str, src: Path, info: dict) -> str:
    """The copy's card: what the calibration is and what it holds for, then the source's card one level down."""
    calibration, m = info["contrast_calibration"], info["contrast_calibration"]["map"]
    return (f"# {name}: `{src.name}` with calibrated contrast hints\n\n"
            f"Copy of `{src}` (same weight files). Contrast hints go through a quantile map fitted on "
            f"{calibration['n']} sampled pairs a round (seed {calibration['seed']}; {calibration['minutes']} min on "
            f"{calibration.get('machine', 'an unrecorded machine')}; `synthaug calibrate`): hint "
            f"{m['hint'][0]:.0f} -> measured {m['measured'][0]:.0f} grey levels at the 2.5th percentile, "
            f"{m['hint'][-1]:.0f} -> {m['measured'][-1]:.0f} at the 97.5th.{_rounds(calibration)} Sampling defaults it "
            f"holds for: mask smoothing {_sigmas(info.get('mask_smoothing'))}, match margin "
            f"{info.get('match_margin', False)}{_edge_gain(info)}. The card of `{src.name}` follows.\n\n"
            + re.sub(r"^(#+) ", r"#\1 ", before, flags=re.M))


def _edge_gain(info: dict) -> str:
    return f", edge gain {info['edge_gain']:g}" if "edge_gain" in info else ""


def _rounds(calibration: dict) -> str:
    """The card's sentence on the rounds: the wanted and made percentiles of each."""
    rounds = calibration.get("rounds") or []
    if not rounds:
        return ""
    made = "; ".join(f"round {i + 1}: " + " / ".join(f"{w:.0f} -> {m:.0f}" for w, m in
                                                      zip(r["wanted_q10_q50_q90"], r["measured_q10_q50_q90"]))
                     for i, r in enumerate(rounds))
    first = "the source's map" if calibration.get("fitted_on") == MAP_SOURCE else "the hints as they were"
    if len(rounds) == 1:
        return f" Its one round sampled through {first}; wanted -> made 10th / 50th / 90th percentiles on its pairs: {made}."
    return (f" Each of its {len(rounds)} rounds sampled through the map of the one before (the first through "
            f"{first}); wanted -> made 10th / 50th / 90th percentiles on its pairs: {made}.")


def _sigmas(smoothing) -> str:
    if not smoothing:
        return "none"
    if isinstance(smoothing, dict):
        return ", ".join(f"{label} {sigma:g} px" for label, sigma in smoothing.items())
    return f"{smoothing:g} px"
