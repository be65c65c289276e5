"""Model cards: a short README.md in every exported checkpoint folder."""
from __future__ import annotations

import json
from pathlib import Path

from ..pipelines.base import GENERATOR_INFO, write_generator_info


def record_training_data(folder: Path, data, dataset) -> dict:
    """Store what a checkpoint was trained on in its synthaug.json (source, case count, case-list hash),
    so benchmarks can check that a generator never saw their test cases."""
    import hashlib

    folder = Path(folder)
    info = json.loads((folder / GENERATOR_INFO).read_text(encoding="utf-8"))
    ids = sorted(r.case_id for r in dataset.records)
    info["training_data"] = {"source": str(data), "n_cases": len(ids),
                             "case_ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
                             "case_ids": ids}
    write_generator_info(folder, info)  # keeps the file hashes current
    return info["training_data"]


def precision_text(info: dict) -> str:
    """How the steps were computed: "float32" for ``mixed_precision: no`` (not "no autocast")."""
    mp = info.get("mixed_precision")
    return "float32" if mp in (None, "no", False) else f"{mp} autocast"


def write_train_card(folder: Path, recipe: dict, data, n_cases: int, metrics: dict | None = None,
                     notes: str | None = None) -> Path:
    """Data, recipe, steps, wall time (from synthaug.json) and any metrics measured so far."""
    folder = Path(folder)
    info = json.loads((folder / GENERATOR_INFO).read_text(encoding="utf-8"))
    lines = [
        f"# {folder.parent.name if folder.name == 'final' else folder.name}",
        "",
        f"- objective: `{recipe['objective']}`, recipe `recipes/{recipe['name']}.yaml`"
        + (f" with `--set {' '.join(recipe['overrides'])}`" if recipe.get("overrides") else ""),
        f"- data: `{data}` ({n_cases} training cases; BUSI is read through split.json, train split only)",
        f"- steps: {info.get('steps')} at batch {info.get('batch_size')}, {precision_text(info)}, EMA {info.get('ema_decay')}",
        f"- wall time: {info.get('train_minutes')} min of training",
        *([f"- continued from `{info['init_from']}`: {info['steps'] - info['steps_this_run']} steps before, "
           f"{info['steps_this_run']} in this run (steps and wall time above are the totals)"]
          if info.get("init_from") else []),
        f"- model resolution {info.get('resolution')} px, output {info.get('output_size')} px",
        "",
        "## Settings",
        "```json",
        json.dumps(recipe["model"], indent=2),
        "```",
    ]
    if notes:
        lines += ["", notes.strip()]
    if metrics:
        lines += ["", "## Metrics", "```json", json.dumps(metrics, indent=2), "```"]
    path = folder / "README.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
