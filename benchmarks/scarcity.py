"""Where synthetic pairs pay (issue 31): DSC against the real fraction, one line per condition.

Reads the per-fraction reports ``benchmarks/seg.py --profile scarcity --real-fraction F`` wrote
(``--report F=RESULTS_JSON``, repeatable) and writes

- a data-efficiency figure: mean DSC over seeds (internal test, STU) against the real fraction,
  one line per condition, 95% t-interval bands over seeds;
- per fraction, each condition's paired difference against ``real`` and against the best
  classical condition with its bootstrap CI and verdict (from the reports: chosen on nothing
  but the runs themselves, never tuned on a test set);
- the annotation saving: the real fraction at which ``real`` reaches, on each test set, what
  the best synthetic condition (best mean validation DSC) reaches at ``--at`` (interpolated linearly in log fraction
  between the measured fractions; "beyond 100%" when ``real`` never does).

    python benchmarks/scarcity.py --report 0.1=benchmarks/results/seg_scarcity_f10.json \\
        --report 0.25=benchmarks/results/seg_scarcity_f25.json --report 1.0=benchmarks/results/seg_scarcity_f100.json \\
        --report 0.25=benchmarks/results/seg_scarcity_desc_f25.json@bus-desc
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, write_results  # noqa: E402

SPLITS = {"internal": "internal test", "external": "STU (external)"}


def seed_values(report: dict, model: str, condition: str, split: str) -> list[float]:
    return [r["metrics"][split]["dsc"] for r in report["runs"] if r["model"] == model and r["condition"] == condition
            and split in r["metrics"]]


def mean_ci(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds (the interval is the mean alone for one seed)."""
    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if v.size < 2:
        return m, m, m
    h = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return m, m - h, m + h


def crossing(fractions: list[float], values: list[float], target: float) -> float | None:
    """The fraction at which the (log-fraction, value) polyline first reaches ``target`` (None: never)."""
    logs = np.log(fractions)
    for i in range(len(values)):
        if values[i] >= target:
            if i == 0:
                return fractions[0]
            t = (target - values[i - 1]) / (values[i] - values[i - 1])
            return float(np.exp(logs[i - 1] + t * (logs[i] - logs[i - 1])))
    return None


CLASSICAL = ("real", "ordinary")


def uses_generator(condition: str) -> bool:
    """A condition with generated pairs (not real data, ordinary augmentation or copy-paste)."""
    return condition not in CLASSICAL and not condition.startswith("copy-paste")


def condition_names(report: dict) -> list[str]:
    """A report's conditions by name (a report records each as a dict with its ``name`` and settings)."""
    return [c["name"] if isinstance(c, dict) else c for c in report["conditions"]]


def merge(base: dict | None, other: dict, label: str) -> dict:
    """``base`` plus ``other``'s synthetic conditions as ``"<condition> [label]"`` (another generator's
    report at the same fraction, e.g. issue 34's descriptor checkpoint); the real and classical runs of
    ``other`` are the same runs as ``base``'s and are not added twice. Paired comparisons stay the ones
    ``other`` computed against its own ``real`` (the same runs)."""
    base = json.loads(json.dumps(base)) if base else {"conditions": [], "runs": [], "summary": {"comparisons": {}}}
    keep = [c for c in condition_names(other) if uses_generator(c)]
    rename = {c: f"{c} [{label}]" for c in keep}
    base["conditions"] = condition_names(base) + [rename[c] for c in keep]
    base["runs"] += [{**r, "condition": rename[r["condition"]]} for r in other["runs"] if r["condition"] in rename]
    for model, splits in other["summary"]["comparisons"].items():
        for split, comps in splits.items():
            into = base["summary"]["comparisons"].setdefault(model, {}).setdefault(split, {})
            into.update({rename[c]: comp for c, comp in comps.items() if c in rename})
    return base


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", action="append", required=True,
                    help="FRACTION=RESULTS_JSON[@LABEL] (repeatable; a LABEL adds another generator's synthetic "
                         "conditions at that fraction, named '<condition> [LABEL]')")
    ap.add_argument("--model", default="unet-lite0")
    ap.add_argument("--at", type=float, default=0.25, help="the fraction whose best synthetic result is matched")
    ap.add_argument("--name", default="seg_scarcity")
    ap.add_argument("--results-dir", type=Path, default=RESULTS, help="where the summary and its figure go")
    args = ap.parse_args(argv)

    reports = {}
    for spec in args.report:
        frac, _, rest = spec.partition("=")
        path, _, label = rest.partition("@")
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        reports[float(frac)] = merge(reports.get(float(frac)), report, label) if label else report
    fractions = sorted(reports)
    conditions = list(dict.fromkeys(c for f in fractions for c in condition_names(reports[f])))
    curves = {s: {c: [] for c in conditions} for s in SPLITS}
    for s in SPLITS:
        for c in conditions:
            for f in fractions:
                vals = seed_values(reports[f], args.model, c, s)
                curves[s][c].append({"fraction": f, "n_seeds": len(vals), **dict(zip(("mean", "lo", "hi"),
                                                                                   mean_ci(vals) if vals else (None,) * 3))})

    md = [f"# Where synthetic pairs pay: `{args.model}` against the real fraction", ""]
    saving = {}
    for s, title in SPLITS.items():
        md += [f"## {title}", "", "| condition | " + " | ".join(f"{f:.0%} real" for f in fractions) + " |",
               "|---" * (len(fractions) + 1) + "|"]
        for c in conditions:
            cells = ["–" if p["mean"] is None else f"{p['mean']:.3f} (n=1)" if p["n_seeds"] < 2 else
                     f"{p['mean']:.3f} [{p['lo']:.3f}, {p['hi']:.3f}] (n={p['n_seeds']})" for p in curves[s][c]]
            md.append(f"| {c} | " + " | ".join(cells) + " |")
        md += ["", "Paired differences (bootstrap 95% CI over test cases, pooled over seeds; from each fraction's report):",
               "", "| fraction | condition | vs `real` | vs best classical |", "|---|---|---|---|"]
        for f in fractions:
            comps = reports[f]["summary"]["comparisons"].get(args.model, {}).get(s, {})
            for c, comp in comps.items():
                parts = []
                for key in ("vs_real", "vs_classical"):
                    x = comp.get(key)
                    parts.append(f"{x['diff']:+.3f} [{x['ci'][0]:+.3f}, {x['ci'][1]:+.3f}] {x['verdict']}"
                                 + (f" (vs {x['baseline']})" if key == "vs_classical" else "") if x else "–")
                md.append(f"| {f:.0%} | {c} | " + " | ".join(parts) + " |")
        real = [p["mean"] for p in curves[s]["real"]] if "real" in curves[s] else None
        if real and None not in real and args.at in fractions:
            k = fractions.index(args.at)
            synthetic = {c: curves[s][c][k]["mean"] for c in conditions
                         if uses_generator(c) and curves[s][c][k]["mean"] is not None}
            if synthetic:  # "best" on validation, never on the test it is then read on
                def on_validation(c):  # every pick here is made on validation, never on the test it is read on
                    return np.mean(seed_values(reports[args.at], args.model, c, "val"))

                best = max(synthetic, key=on_validation)
                at = crossing(fractions, real, synthetic[best])
                saving[s] = {"best_synthetic": best, "dsc": synthetic[best], "real_reaches_at": at}
                md += ["", f"Annotation saving ({title}): the best synthetic condition at {args.at:.0%} real, `{best}`, "
                       f"reaches {synthetic[best]:.3f}; `real` reaches that at "
                       + (f"about {at:.0%} of the real cases" if at else "no measured fraction (beyond 100%)") + "."]
                classical = {c: curves[s][c][k]["mean"] for c in conditions if c != "real" and c not in synthetic
                             and curves[s][c][k]["mean"] is not None}
                if classical:  # the same reading for the best classical condition, the saving users get today
                    base = max(classical, key=on_validation)
                    at_c = crossing(fractions, real, classical[base])
                    saving[s]["best_classical"] = {"condition": base, "dsc": classical[base], "real_reaches_at": at_c}
                    md[-1] += (f" For comparison, the best classical condition there, `{base}`, reaches "
                               f"{classical[base]:.3f} (`real` reaches that at "
                               + (f"about {at_c:.0%})." if at_c else "no measured fraction, beyond 100%)."))
        md.append("")
    compute = compute_time(reports, args.model)
    md += ["## Compute", "", "Minutes per run (train + evaluation, one torch thread a run) and the hours the matrix took, "
           "over the runs done (a run shared by several reports counted once; bank sampling not included):", "",
           "| fraction | runs | minutes per run | hours | precision | CPU |", "|---|---|---|---|---|---|"]
    md += [f"| {r['fraction']} | {r['runs']} | {r['minutes_mean']:.1f} ± {r['minutes_std']:.1f} | {r['hours']:.1f} | "
           f"{r['precision']} | {cpus(r)} |" for r in compute["rows"]]
    md += ["", f"All fractions: {compute['runs']} runs, {compute['hours']:.1f} h of one core.", ""]
    paired = paired_curves(reports, fractions, args.model, conditions)
    figure = plot(curves, fractions, args.name, out_dir=args.results_dir, paired=paired)
    write_results(args.name, {"model": args.model, "fractions": fractions, "curves": curves, "saving": saving,
                              "paired_vs_classical": paired,
                              "compute": compute,
                              "reports": {str(f): reports[f].get("command") for f in fractions},
                              "figure": str(figure.name)}, "\n".join(md),
                  out_dir=args.results_dir)


def compute_time(reports: dict[float, dict], model: str) -> dict:
    """Minutes per run and total hours per fraction, from the runs' own ``seconds`` (``merge`` already keeps a
    run that several reports share once)."""
    rows = []
    for f, report in sorted(reports.items()):
        runs = [r for r in report["runs"] if r["model"] == model]
        if not runs:
            continue
        minutes = np.array([r["seconds"] / 60 for r in runs])
        bf16 = {r.get("settings", {}).get("bf16") for r in runs}
        rows.append({"fraction": f"{f:.0%}", "runs": len(runs), "minutes_mean": float(minutes.mean()),
                     "minutes_std": float(minutes.std(ddof=1)) if minutes.size > 1 else 0.0,
                     "hours": float(minutes.sum() / 60),
                     "precision": " and ".join("bf16" if b else "float32" for b in sorted(bf16, key=str) if b is not None)
                     or "not recorded",
                     "machines": sorted({r["machine"].split(",")[0] for r in runs if r.get("machine")}),
                     "runs_with_machine": sum(bool(r.get("machine")) for r in runs)})
    return {"rows": rows, "runs": sum(r["runs"] for r in rows), "hours": sum(r["hours"] for r in rows)}


def cpus(row: dict) -> str:
    """The CPUs the runs recorded, and how many runs predate the record (session 27)."""
    if not row["machines"]:
        return "not recorded (runs before session 27)"
    rest = row["runs"] - row["runs_with_machine"]
    return "; ".join(row["machines"]) + (f" ({row['runs_with_machine']} runs; {rest} not recorded)" if rest else "")


def drawn(points: dict, min_band_seeds: int = 3) -> dict[str, bool]:
    """Condition -> whether its band is drawn, for the conditions the figure draws: those measured at every
    fraction (the 25%-only schedule candidates are in the tables); a 95% band over seeds only where every
    point has ``min_band_seeds`` (two seeds give a t-interval wider than the DSC range, hiding the lines)."""
    return {c: all(p["n_seeds"] >= min_band_seeds for p in pts) for c, pts in points.items()
            if all(p["mean"] is not None for p in pts)}


def paired_curves(reports: dict[float, dict], fractions: list[float], model: str, conditions: list[str]) -> dict:
    """Test -> synthetic condition -> the paired difference against the best classical condition at each
    fraction (each report's bootstrap over test cases, pooled over seeds), for conditions compared at every
    fraction. Seed bands over 3 seeds are wide; the paired CIs are what the verdicts read."""
    out = {}
    for s in SPLITS:
        out[s] = {}
        for c in filter(uses_generator, conditions):
            pts = []
            for f in fractions:
                x = reports[f]["summary"]["comparisons"].get(model, {}).get(s, {}).get(c, {}).get("vs_classical")
                pts.append({"fraction": f, "diff": x["diff"], "lo": x["ci"][0], "hi": x["ci"][1],
                            "baseline": x["baseline"]} if x else None)
            if all(pts):
                out[s][c] = pts
    return out


def plot(curves: dict, fractions: list[float], name: str, min_band_seeds: int = 3, out_dir: Path = RESULTS,
         paired: dict | None = None) -> Path:
    """DSC against the real fraction, one panel per test (the axis spans the means, within [0, 1]); with
    ``paired``, a second row: each synthetic condition's paired difference against the best classical one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = 2 if paired and any(paired.values()) else 1
    fig, grid = plt.subplots(rows, len(SPLITS), figsize=(11, 4 * rows), sharey=False, squeeze=False)
    axes = grid[0]
    names = list(dict.fromkeys(c for s in SPLITS for c in drawn(curves[s], min_band_seeds)))
    colour = {c: f"C{i % 10}" for i, c in enumerate(names)}
    for ax, (s, title) in zip(axes, SPLITS.items()):
        means = []
        for c, band in drawn(curves[s], min_band_seeds).items():
            pts = curves[s][c]
            x, m = [p["fraction"] for p in pts], [p["mean"] for p in pts]
            means += m
            ax.plot(x, m, marker="o", label=f"{c} ({min(p['n_seeds'] for p in pts)}+ seeds)", color=colour[c],
                    linestyle="-" if uses_generator(c) else "--")
            if band:
                ax.fill_between(x, [max(0.0, p["lo"]) for p in pts], [min(1.0, p["hi"]) for p in pts], alpha=0.15,
                                color=colour[c])
        if means:
            ax.set_ylim(max(0.0, min(means) - 0.08), min(1.0, max(means) + 0.05))
        ax.set_xscale("log")
        ax.set_xticks(fractions, [f"{f:.0%}" for f in fractions])
        ax.set_xlabel("real train cases used")
        ax.set_ylabel("mean DSC over seeds")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    if rows == 2:
        for ax, (s, title) in zip(grid[1], SPLITS.items()):
            shown = [c for c in paired[s] if c in colour]
            for k, c in enumerate(shown):
                pts = paired[s][c]
                x = [p["fraction"] * 1.06 ** (k - (len(shown) - 1) / 2) for p in pts]  # side by side on a log axis
                d = [p["diff"] for p in pts]
                ax.errorbar(x, d, yerr=[[p["diff"] - p["lo"] for p in pts], [p["hi"] - p["diff"] for p in pts]],
                            marker="o", capsize=3, color=colour[c], label=c)
            baselines = sorted({p["baseline"] for c in shown for p in paired[s][c]})
            ax.axhline(0, color="black", linewidth=0.8)
            ax.set_xscale("log")
            ax.set_xticks(fractions, [f"{f:.0%}" for f in fractions])
            ax.set_xlabel("real train cases used")
            ax.set_ylabel("DSC difference (paired 95% CI)")
            ax.set_title(f"{title}: minus {' / '.join(f'`{b}`' for b in baselines)} (best classical)", fontsize=10)
            ax.grid(alpha=0.3)
        grid[1][0].legend(fontsize=7)
    fig.suptitle(f"dashed: no generator; bands: 95% CI over seeds (shown from {min_band_seeds} seeds)"
                 + ("; below: paired bootstrap over test cases, pooled over seeds" if rows == 2 else ""), fontsize=9)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{name}.png"
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


if __name__ == "__main__":
    main()
