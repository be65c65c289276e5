"""Statistics a reader can check: mean ± std over seeds, per-seed paired differences, and a paired
bootstrap 95% CI over test cases pooled over seeds, with a verdict rule.

**Paired bootstrap.** A condition and its baseline are paired by seed (same
seed: same initialisation and data order) and by test case (same case). One
bootstrap draw resamples the test cases with replacement, the same cases for
both conditions and every seed, computes the metric of each (seed, condition)
on the resampled cases (DSC: the mean over cases; AUC: the AUC of the
resampled cases), and takes the difference condition - baseline averaged over
the seeds both have. The 95% CI is the 2.5th and 97.5th percentile of
``n_boot`` such differences. Resampling cases answers "would this hold on
other patients like these", the question a test set stands in for; averaging
over seeds takes the training noise out of the point estimate.

**Verdict.** ``gain`` when the CI's lower bound is above 0, ``loss`` when its
upper bound is below 0, else ``no detectable difference``.

**Where a difference comes from** (``case_breakdown``, per-case metrics such as
DSC): a broad shift moves the median case; a few failures move the mean alone.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

GAIN, LOSS, NONE = "gain", "loss", "no detectable difference"
VERDICT_RULE = ("gain if the lower bound of the paired bootstrap 95% CI of the difference is above 0, "
                "loss if its upper bound is below 0, otherwise no detectable difference")


def mean_std(values) -> dict:
    """Mean and sample std over seeds (0 for one seed)."""
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n_seeds": int(v.size)}


def verdict(low: float, high: float) -> str:
    if low > 0:
        return GAIN
    if high < 0:
        return LOSS
    return NONE


def _auc_rows(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUC of each row of ``scores`` (B x n) against the matching row of 0/1 ``labels`` (Mann-Whitney, ties halved)."""
    ranks = rankdata(scores, axis=1)
    pos = labels == 1
    n_pos, n_neg = pos.sum(1), (~pos).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((ranks * pos).sum(1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


METRIC_FUNCS = {
    # per-case values (n,) or resampled (B, n) -> the metric per row
    "mean": lambda x, labels=None: x.mean(axis=-1),
    "auc": lambda x, labels: _auc_rows(np.atleast_2d(x), np.atleast_2d(labels)),
}


def paired_bootstrap(cond: dict, base: dict, metric: str = "mean", labels=None, n_boot: int = 2000,
                     seed: int = 0) -> dict:
    """Difference condition - baseline with its paired bootstrap 95% CI and verdict.

    ``cond`` and ``base`` map seed -> per-case values (the same cases in the same
    order for every seed: DSC per case, or a classifier's scores with ``labels``
    and ``metric="auc"``). Only seeds present in both are used.
    """
    seeds = sorted(set(cond) & set(base))
    if not seeds:
        return {}
    f = METRIC_FUNCS[metric]
    a = np.stack([np.asarray(cond[s], dtype=float) for s in seeds])  # seeds x cases
    b = np.stack([np.asarray(base[s], dtype=float) for s in seeds])
    n = a.shape[1]
    y = None if labels is None else np.asarray(labels)
    per_seed = [float(np.squeeze(f(a[i], y)) - np.squeeze(f(b[i], y))) for i in range(len(seeds))]
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    yy = None if y is None else y[idx]
    boot = np.mean([f(a[i][idx], yy) - f(b[i][idx], yy) for i in range(len(seeds))], axis=0)
    boot = boot[np.isfinite(boot)]  # an AUC resample holding one class only has none
    low, high = (float(q) for q in np.percentile(boot, [2.5, 97.5]))
    return {"diff": float(np.mean(per_seed)), "per_seed": dict(zip(seeds, per_seed)), "ci": [low, high],
            "verdict": verdict(low, high), "n_seeds": len(seeds), "n_cases": int(n), "n_boot": int(boot.size)}


def case_breakdown(cond: dict, base: dict, ids: list[str], worst: int = 3, fail: float = 0.1) -> dict:
    """Per test case, each metric averaged over the seeds both have: the median case difference, the share of
    cases that got worse, the cases a condition fails (below ``fail``) that the baseline does not, and the
    ``worst`` largest drops as (case id, baseline, condition)."""
    seeds = sorted(set(cond) & set(base))
    if not seeds:
        return {}
    a = np.mean([np.asarray(cond[s], dtype=float) for s in seeds], axis=0)
    b = np.mean([np.asarray(base[s], dtype=float) for s in seeds], axis=0)
    d = a - b
    failed = [ids[i] for i in np.flatnonzero((a < fail) & (b >= fail))]
    return {"median_case_diff": float(np.median(d)), "share_worse": float(np.mean(d < 0)), "fail_below": fail,
            "failed": failed, "worst": [(ids[i], float(b[i]), float(a[i])) for i in np.argsort(d)[:worst]],
            "n_seeds": len(seeds)}
