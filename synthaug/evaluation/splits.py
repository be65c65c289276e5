"""Stratified parts of a set of cases: test / validation carving, capped subsets, nested real fractions,
and the class shares a synthetic bank is drawn at. The benchmark's BUSI/STU parts are built from these
(``benchmarks/bench/driver.py``), and so are the parts of ``synthaug trial`` (``holdout``).
"""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from ..data.datasets import PairDataset
from ..errors import SynthaugError

SPLIT_SEED = 0  # the benchmark split is fixed; run seeds vary training only


def subset(ds: PairDataset, idx) -> PairDataset:
    return PairDataset([ds.records[i] for i in idx])


def stratified_split(ds: PairDataset, test_fraction: float, seed: int) -> tuple[PairDataset, PairDataset]:
    a, b = train_test_split(np.arange(len(ds)), test_size=test_fraction, stratify=ds.labels, random_state=seed)
    return subset(ds, a), subset(ds, b)


def cap_cases(ds: PairDataset, n: int | None, seed: int = SPLIT_SEED) -> PairDataset:
    """At most ``n`` cases, stratified by tumour type when known (the quick profile's few dozen)."""
    if n is None or n >= len(ds):
        return ds
    labels = ds.labels
    stratify = labels if min(labels) >= 0 else None
    keep, _ = train_test_split(np.arange(len(ds)), train_size=n, stratify=stratify, random_state=seed)
    return subset(ds, sorted(keep))


def real_fraction_subset(train: PairDataset, fraction: float, seed: int) -> PairDataset:
    """A stratified ``fraction`` of the train part, fixed per seed and nested across fractions.

    Each tumour type's cases are shuffled once per seed and the first ``round(fraction x n_type)``
    (at least one) are kept, so 10% of a seed lies inside its 25%, which lies inside 100%: a
    scarcity curve compares annotation budgets, not different draws of cases.
    """
    if not 0 < fraction <= 1:
        raise SynthaugError(f"--real-fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return train
    labels = np.array(train.labels)
    keep = []
    for code in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == code)
        order = np.random.default_rng([seed, int(code) + 1]).permutation(idx)
        keep += order[: max(1, round(fraction * idx.size))].tolist()
    return subset(train, sorted(keep))


def class_shares(train: PairDataset, conditional: bool) -> dict:
    """Tumour-type shares of the real train part, the shares the synthetic bank is drawn at."""
    if not conditional:
        return {None: 1.0}
    labels = np.array(train.labels)
    return {"benign": float(np.mean(labels == 0)), "malignant": float(np.mean(labels == 1))}


def class_counts(n: int, shares: dict) -> dict:
    """``n`` split by ``shares`` with largest-remainder rounding, so the counts sum to ``n``."""
    raw = {k: n * p for k, p in shares.items()}
    counts = {k: int(np.floor(v)) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)[: n - sum(counts.values())]:
        counts[k] += 1
    return counts
