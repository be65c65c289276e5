"""Figures the benchmarks share. matplotlib runs headless (Agg): benchmarks run on servers and in CI."""
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
