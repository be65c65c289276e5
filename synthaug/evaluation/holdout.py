"""The parts of a user's raw folder a trial trains, selects and tests on.

A trial must never choose anything on the cases it reports: the test part is
held out first (``imagesTs``/``labelsTs`` when the folder has them, else a
stratified share of its training cases), validation (checkpoint and ratio
selection) is carved from what is left, and training uses the rest. Strata are
the tumour types when every case has one, else the lesion size (terciles of
the mask area, cases without a lesion apart), so a small folder's test part
is not all small lesions by chance. Each stratum is shuffled once with the
split seed, so the split is the same on every rerun (resumption depends on it).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..data.datasets import PairDataset, Record, read_label_png
from ..errors import SynthaugError
from ..io.images import read_gray
from ..io.nnunet_raw import CHANNEL, RawDataset
from .splits import class_counts, subset

MIN_TEST, MIN_VAL, MIN_TRAIN = 3, 3, 6  # fewer cases cannot be split into parts that say anything
TEST_FRACTION, VAL_FRACTION = 0.2, 0.2


def strata(ds: PairDataset) -> list[int]:
    """Tumour type of every case when all are known; else 0 (no lesion) or 1-3 (lesion area tercile)."""
    labels = ds.labels
    if min(labels) >= 0:
        return labels
    area = np.array([r.mask.mean() for r in ds.records])
    cuts = np.quantile(area[area > 0], [1 / 3, 2 / 3]) if (area > 0).any() else [0, 0]
    return [0 if a == 0 else 1 + int(np.searchsorted(cuts, a, side="right")) for a in area]


def stratified_take(groups: list[int], n: int, seed: int) -> list[int]:
    """Indices of ``n`` cases drawn at the strata's shares (largest remainder), each stratum shuffled once."""
    groups = np.asarray(groups)
    keys = sorted(set(groups.tolist()))
    counts = class_counts(n, {k: float(np.mean(groups == k)) for k in keys})
    picked = []
    for k in keys:
        idx = np.flatnonzero(groups == k)
        picked += np.random.default_rng([seed, int(k) + 7]).permutation(idx)[: counts[k]].tolist()
    return sorted(picked)


def carve(ds: PairDataset, fraction: float, minimum: int, seed: int) -> tuple[PairDataset, PairDataset]:
    """(rest, carved): a stratified ``fraction`` of ``ds`` (at least ``minimum`` cases) set apart."""
    n = max(minimum, round(fraction * len(ds)))
    take = set(stratified_take(strata(ds), n, seed))
    rest = [i for i in range(len(ds)) if i not in take]
    return subset(ds, rest), subset(ds, sorted(take))


def read_test_part(root: Path, size) -> PairDataset | None:
    """The folder's own test cases (imagesTs/labelsTs with a label for every image), or None when it has none."""
    raw = RawDataset.open(root, check_count=False)
    images, labels = root / "imagesTs", root / "labelsTs"
    if not (images.is_dir() and labels.is_dir()):
        return None
    fe, meta = raw.file_ending, raw.metadata()
    cases = sorted(p.name[: -len(CHANNEL + fe)] for p in images.glob(f"*{CHANNEL}{fe}") if not p.name.startswith("."))
    cases = [c for c in cases if (labels / f"{c}{fe}").is_file()]
    if not cases:
        return None
    return PairDataset([Record(read_gray(images / f"{c}{CHANNEL}{fe}"), read_label_png(labels / f"{c}{fe}"),
                               (meta.get(c) or {}).get("label"), c) for c in cases], size=size)


def trial_parts(cases: PairDataset, test: PairDataset | None = None, seed: int = 0) -> dict:
    """{"sets": {"train", "val", "internal"}, "names": what each one is}; refuses a folder too small to split.

    ``test`` (the folder's imagesTs) is used as the test part when given; otherwise one is carved from
    ``cases`` first. Validation is then carved from the remaining cases; the test part takes no part in it.
    """
    n = len(cases)
    need = MIN_TRAIN + MIN_VAL + (0 if test is not None else MIN_TEST)
    n_test = 0 if test is not None else max(MIN_TEST, round(TEST_FRACTION * n))
    n_val = max(MIN_VAL, round(VAL_FRACTION * (n - n_test)))
    if n < need or n - n_test - n_val < MIN_TRAIN:
        raise SynthaugError(f"{n} training cases are too few for a trial: it needs at least {need} "
                            f"({MIN_TRAIN} to train, {MIN_VAL} to validate"
                            + ("" if test is not None else f", {MIN_TEST} to test") + ")")
    if test is None:
        rest, test = carve(cases, TEST_FRACTION, MIN_TEST, seed)
        test_name = f"held out: a stratified {TEST_FRACTION:.0%} of the folder's cases, never used for selection"
    else:
        rest, test_name = cases, "the folder's own test cases (imagesTs/labelsTs)"
    train, val = carve(rest, VAL_FRACTION, MIN_VAL, seed + 1)
    names = {"val": f"a stratified {VAL_FRACTION:.0%} of the rest, for checkpoint and ratio selection",
             "internal": test_name, "test_withheld": False}
    return {"sets": {"train": train, "val": val, "internal": test}, "names": names}


def split_key(parts: dict) -> str:
    """A hash of which case is in which part: runs of another split never mix into a trial's results."""
    text = "\n".join(f"{k}:{','.join(sorted(r.case_id for r in ds.records))}" for k, ds in sorted(parts.items()))
    return hashlib.sha1(text.encode()).hexdigest()[:8]
