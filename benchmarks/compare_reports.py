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
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synthaug.evaluation.report import ROLES, TESTS, case_values, fmt_diff  # noqa: E402
from synthaug.evaluation.stats import VERDICT_RULE, case_breakdown, paired_bootstrap  # noqa: E402
from benchmarks.common import write_results  # noqa: E402

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


def markdown(a: dict, b: dict, result: dict) -> str:
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
    return "\n".join(md)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, metavar="LABEL=RESULTS.json:CONDITION", help="the side tested")
    ap.add_argument("--b", required=True, metavar="LABEL=RESULTS.json:CONDITION", help="the baseline")
    ap.add_argument("--metric", default="mean", choices=("mean", "auc"),
                    help="mean for per-case scores (segmentation), auc for a classifier's scores")
    ap.add_argument("--name", required=True, help="results/<name>.json and .md")
    args = ap.parse_args(argv)
    a, b = load_side(args.a), load_side(args.b)
    check_comparable(a, b)
    result = compare_sides(a, b, args.metric)
    if not result:
        raise SystemExit("compare_reports: no seed with per-case scores on both sides")
    write_results(args.name, {"a": {k: a[k] for k in ("label", "path", "condition")},
                              "b": {k: b[k] for k in ("label", "path", "condition")}, "metric": args.metric,
                              "comparison": result}, markdown(a, b, result))
    print(markdown(a, b, result), flush=True)


if __name__ == "__main__":
    main()
