"""Paired comparison of conditions from two benchmark reports: does one bank beat another?

A benchmark report (``seg.py``/``cls.py``) compares its conditions with ``real`` and with
the best classical one. Two banks of the same generator that differ in a bank setting
(e.g. ungated against gated by the quality gate, or two mask guidances) live in two reports,
because a run's bank is the report's. This script pairs them: the same test cases, the
seeds both have, the paired bootstrap and verdict rule of ``bench/stats.py``.

    python benchmarks/compare_reports.py \\
        --a 'gated=benchmarks/results/seg_pig-busi-128_gated_converged_fp32.json:pig 100%' \\
        --b 'ungated=benchmarks/results/seg_pig-busi-128_converged_fp32.json:pig 100%' \\
        --name seg_pig-busi-128_gated_vs_ungated_fp32

The two reports must share the task, the profile and its settings (otherwise the runs differ
in more than the bank, and the script stops with one line saying which setting differs).

It also lists every run of both sides (best epoch, validation, tests, seconds an epoch), the spread
of each side over its seeds (the noise a difference is read against), and, where both sides have a
run of the same seed with its validation curve, the curves in ``results/<name>_curves.png``: so the
same run made twice (e.g. before and after a faster training loop, issue 31) is checked as well.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synthaug.evaluation.report import ROLES, TESTS, case_values, fmt_diff  # noqa: E402
from synthaug.evaluation.stats import VERDICT_RULE, case_breakdown, paired_bootstrap  # noqa: E402
from benchmarks.common import RESULTS, write_results  # noqa: E402

MATCHED = ("task", "profile", "settings", "split_names")


def parse_side(text: str) -> tuple[str, Path, str]:
    """``label=path.json:condition`` -> (label, path, condition)."""
    label, eq, rest = text.partition("=")
    path, colon, condition = rest.rpartition(":")
    if not (eq and colon and label and path and condition):
        raise SystemExit(f"compare_reports: {text!r} is not LABEL=RESULTS.json:CONDITION")
    return label, Path(path), condition


def load_side(text: str) -> dict:
    label, path, condition = parse_side(text)
    if not path.is_file():
        raise SystemExit(f"compare_reports: no results file {path}")
    report = json.loads(path.read_text(encoding="utf-8"))
    runs = [r for r in report.get("runs", []) if r["condition"] == condition]
    if not runs:
        have = sorted({r["condition"] for r in report.get("runs", [])})
        raise SystemExit(f"compare_reports: {path} has no finished runs of {condition!r} (it has {have})")
    return {"label": label, "path": str(path), "condition": condition, "report": report, "runs": runs}


def check_comparable(a: dict, b: dict) -> None:
    for key in MATCHED:
        if a["report"].get(key) != b["report"].get(key):
            raise SystemExit(f"compare_reports: the reports differ in {key!r}, so their runs differ in more than "
                             "the bank: not comparable")


def by_seed(runs: list[dict], split: str) -> tuple[list[str] | None, dict, list | None]:
    """(case ids, seed -> per-case values, class labels) of one side's runs on ``split``."""
    ids, values, labels = None, {}, None
    for r in runs:
        if split in r["metrics"] and (cv := case_values(None, r, split)):
            ids = ids or cv[0]
            if cv[0] == ids:
                values[r["seed"]] = cv[1]
                labels = labels if labels is not None else r["metrics"][split]["cases"].get("labels")
    return ids, values, labels


def compare_sides(a: dict, b: dict, metric: str = "mean") -> dict:
    """{split: paired bootstrap of a - b (plus the case breakdown for per-case scores)} over common seeds."""
    out = {}
    for split in TESTS:
        ids_a, va, labels = by_seed(a["runs"], split)
        ids_b, vb, _ = by_seed(b["runs"], split)
        if not va or not vb:
            continue
        if ids_a != ids_b:
            raise SystemExit(f"compare_reports: the two reports measured other {split} cases: not paired")
        res = paired_bootstrap(va, vb, metric, labels)
        if res and metric == "mean":
            res["cases"] = case_breakdown(va, vb, ids_a)
        if res:
            out[split] = res
    return out


def run_rows(side: dict) -> list[dict]:
    """One row per run of a side: seed, best epoch, DSC on validation and the tests, seconds an epoch."""
    rows = []
    for r in sorted(side["runs"], key=lambda r: r["seed"]):
        m = r.get("metrics", {})
        epochs = r.get("epochs_run") or r.get("epochs")
        rows.append({"label": side["label"], "seed": r["seed"], "best_epoch": r.get("best_epoch"),
                     **{split: m[split]["dsc"] for split in ("val", *TESTS) if split in m},
                     "seconds_per_epoch": r["train_seconds"] / epochs if r.get("train_seconds") and epochs else None})
    return rows


def seed_spread(rows: list[dict]) -> dict:
    """Standard deviation over seeds of each score (the run-to-run noise), where a side has 2+ seeds."""
    out = {}
    for split in ("val", *TESTS):
        values = [r[split] for r in rows if split in r]
        if len(values) >= 2:
            out[split] = float(np.std(values, ddof=1))
    return out


def curve_figure(a: dict, b: dict, path: Path) -> dict | None:
    """Validation curves of the seeds both sides ran, overlaid; returns {seed: largest |difference|}."""
    curves = {side["label"]: {r["seed"]: [e["val"]["dsc"] for e in r["curve"]] for r in side["runs"] if r.get("curve")}
              for side in (a, b)}
    seeds = sorted(set(curves[a["label"]]) & set(curves[b["label"]]))
    if not seeds:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    gaps = {}
    for seed in seeds:
        ca, cb = curves[a["label"]][seed], curves[b["label"]][seed]
        for label, c, style in ((a["label"], ca, "-"), (b["label"], cb, "--")):
            ax.plot(range(1, len(c) + 1), c, style, label=f"{label}, seed {seed}")
        n = min(len(ca), len(cb))
        gaps[seed] = float(np.max(np.abs(np.subtract(ca[:n], cb[:n]))))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation DSC")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return gaps


def runs_markdown(a: dict, b: dict, gaps: dict | None, figure: str | None) -> list[str]:
    rows = {side["label"]: run_rows(side) for side in (a, b)}
    cell = lambda v, f: "–" if v is None else format(v, f)  # noqa: E731
    md = ["", "Runs (DSC; seconds an epoch as each run was timed, under its own load):", "",
          "| side | seed | best epoch | validation | internal | external | s / epoch |", "|---|---|---|---|---|---|---|"]
    md += [f"| {r['label']} | {r['seed']} | {cell(r['best_epoch'], 'd')} | {cell(r.get('val'), '.3f')} | "
           f"{cell(r.get('internal'), '.3f')} | {cell(r.get('external'), '.3f')} | {cell(r['seconds_per_epoch'], '.1f')} |"
           for r in rows[a["label"]] + rows[b["label"]]]
    for side in (a, b):
        if spread := seed_spread(rows[side["label"]]):
            md.append("")
            md.append(f"Spread of {side['label']} over its seeds (std): "
                      + ", ".join(f"{ROLES.get(k, 'validation')} {v:.3f}" for k, v in spread.items()) + ".")
    if gaps:
        md += ["", "Largest validation-curve difference at the same epoch: "
               + ", ".join(f"seed {s} {g:.3f}" for s, g in gaps.items()) + f" ([curves]({figure}))."]
    return md


def markdown(a: dict, b: dict, result: dict, *extra) -> str:
    task = a["report"]["task"]
    md = [f"# {a['label']} against {b['label']} ({task})", "",
          f"`{a['condition']}` of [{Path(a['path']).name}]({Path(a['path']).name}) minus `{b['condition']}` of "
          f"[{Path(b['path']).name}]({Path(b['path']).name}): mean over the seeds both have "
          "[paired bootstrap 95% CI over test cases, pooled over seeds] verdict (per-seed differences).", "",
          "| test | difference | median case difference | cases worse |", "|---|---|---|---|"]
    for split, res in result.items():
        cases = res.get("cases", {})
        md.append(f"| {ROLES[split]} | {fmt_diff(res)} | {cases.get('median_case_diff', float('nan')):+.3f} | "
                  f"{cases.get('share_worse', float('nan')):.0%} |")
    seeds = sorted(set().union(*(set(r['per_seed']) for r in result.values()))) if result else []
    md += ["", f"Seeds compared: {seeds}. " + VERDICT_RULE]
    return "\n".join(md + runs_markdown(a, b, *extra))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, metavar="LABEL=RESULTS.json:CONDITION", help="the side tested")
    ap.add_argument("--b", required=True, metavar="LABEL=RESULTS.json:CONDITION", help="the baseline")
    ap.add_argument("--metric", default="mean", choices=("mean", "auc"),
                    help="mean for per-case scores (segmentation), auc for a classifier's scores")
    ap.add_argument("--name", required=True, help="<results-dir>/<name>.json and .md")
    ap.add_argument("--results-dir", type=Path, default=RESULTS,
                    help="where the comparison goes (default benchmarks/results; a separate matrix's folder)")
    args = ap.parse_args(argv)
    if Path(args.name).name != args.name:
        raise SystemExit(f"compare_reports: --name {args.name!r} is a file stem; give its folder as --results-dir")
    a, b = load_side(args.a), load_side(args.b)
    check_comparable(a, b)
    result = compare_sides(a, b, args.metric)
    if not result:
        raise SystemExit("compare_reports: no seed with per-case scores on both sides")
    figure = f"{args.name}_curves.png"
    gaps = curve_figure(a, b, args.results_dir / figure)
    md = markdown(a, b, result, gaps, figure)
    write_results(args.name, {"a": {k: a[k] for k in ("label", "path", "condition")},
                              "b": {k: b[k] for k in ("label", "path", "condition")}, "metric": args.metric,
                              "comparison": result, "runs": [r for side in (a, b) for r in run_rows(side)],
                              "spread": {side["label"]: seed_spread(run_rows(side)) for side in (a, b)},
                              "curve_gaps": gaps}, md, out_dir=args.results_dir)
    print(md, flush=True)


if __name__ == "__main__":
    main()
