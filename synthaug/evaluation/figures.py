"""Figures of a matrix of runs (benchmarks and ``synthaug trial``): the ratio curve, the validation curves and the
per-condition test scores. matplotlib runs headless (Agg): they are made on servers and in CI."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def ratio_curve(cells: dict, models: list[str], conditions: list[tuple[str, float, bool]], metric: str,
                metric_label: str, splits: dict[str, str], out: Path, title: str = "") -> Path:
    """Score vs synthetic ratio, one panel per evaluation set (the BUS paper's Fig. 6).

    ``cells[model][condition][split][metric]`` holds ``{"mean", "std", "n_seeds"}``;
    ``conditions`` are (name, ratio, ordinary augmentation). Synthetic ratios
    are the curve (mean ± std over seeds); the real-only conditions are
    horizontal references in the model's colour, dashed for ``0%`` (no
    augmentation) and dotted for ``ordinary``, since they are what a ratio
    has to beat. Missing cells (runs not done yet) are left out.
    """
    fig, axes = plt.subplots(1, len(splits), figsize=(5.5 * len(splits), 4), squeeze=False)
    synthetic = sorted((ratio, name) for name, ratio, _ in conditions if ratio > 0)
    references = [(name, "--" if not augment else ":") for name, ratio, augment in conditions if ratio == 0]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (split, label) in zip(axes[0], splits.items()):
        for i, model in enumerate(models):
            color = colors[i % len(colors)]
            row = cells.get(model, {})
            points = [(100 * ratio, row[name][split][metric]) for ratio, name in synthetic
                      if split in row.get(name, {})]
            if points:
                ax.errorbar([x for x, _ in points], [c["mean"] for _, c in points], yerr=[c["std"] for _, c in points],
                            marker="o", capsize=3, color=color, label=model)
            for name, style in references:
                if split in row.get(name, {}):
                    ax.axhline(row[name][split][metric]["mean"], color=color, linestyle=style, linewidth=1,
                               label=f"{model} {name}")
        ax.set(title=label, xlabel="synthetic pairs per real case (%)", ylabel=metric_label)
        if synthetic:
            ax.set_xticks([0] + [100 * r for r, _ in synthetic])
            ax.set_xlim(left=-5)
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def curves_figure(task, runs: list[dict], plan: dict, out: Path) -> Path | None:
    """Validation score and training loss per epoch of one seed (the lowest with curves), every condition."""
    with_curves = [r for r in runs if r.get("curve")]
    if not with_curves:
        return None
    seed = min(r["seed"] for r in with_curves)
    key, models = task.metrics[0], plan["models"]
    fig, axes = plt.subplots(len(models), 2, figsize=(11, 3.8 * len(models)), squeeze=False)
    for row, m in zip(axes, models):
        for c in plan["conditions"]:
            r = next((r for r in with_curves if (r["model"], r["seed"], r["condition"]) == (m, seed, c.name)), None)
            if not r:
                continue
            ep = [p["epoch"] for p in r["curve"]]
            (line,) = row[0].plot(ep, [p["val"][key] for p in r["curve"]], label=c.name, linewidth=1.2)
            row[0].plot([r["best_epoch"]], [r["curve"][r["best_epoch"] - 1]["val"][key]], "o", color=line.get_color())
            row[1].plot(ep, [p["train_loss"] for p in r["curve"]], label=c.name, linewidth=1.2)
        row[0].set(title=f"{m}, seed {seed}: validation {task.metric_labels[key]} (dot: checkpoint kept)",
                   xlabel="epoch", ylabel=task.metric_labels[key])
        row[1].set(title=f"{m}, seed {seed}: training loss", xlabel="epoch", ylabel="loss", yscale="log")
        for ax in row:
            ax.grid(alpha=0.3)
            if ax.has_data():
                ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def conditions_figure(task, summary: dict, plan: dict, panels: dict, out: Path) -> Path:
    """Mean ± std over seeds of every condition on each test set, with the `real` mean as a dashed line."""
    key = task.metrics[0]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    names = [c.name for c in plan["conditions"]]
    for ax, (split, title) in zip(axes[0], panels.items()):
        for i, m in enumerate(plan["models"]):
            row = summary["cells"].get(m, {})
            xs = [j for j, n in enumerate(names) if split in row.get(n, {})]
            ax.errorbar([x + 0.1 * i for x in xs], [row[names[j]][split][key]["mean"] for j in xs],
                        yerr=[row[names[j]][split][key]["std"] for j in xs], fmt="o", capsize=3, label=m)
            if split in row.get("real", {}):
                ax.axhline(row["real"][split][key]["mean"], linestyle="--", linewidth=1, color="grey")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
        ax.set(title=title, ylabel=task.metric_labels[key])
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=7)
    fig.suptitle(task.title)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
