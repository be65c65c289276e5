"""Summary, tables, figures and the results JSON of a benchmark matrix.

Tables (rows models, columns conditions) of mean ± std over seeds per
evaluation set; the condition validation picks; and, when the runs saved
per-case scores, the paired comparisons of every condition against ``real``
and against the best classical condition (``ordinary`` or ``copy-paste``,
whichever scores higher on validation) with per-seed differences, paired
bootstrap 95% CIs and verdicts (``stats.py``).
"""
from __future__ import annotations

from .conditions import TrainCondition
from .stats import VERDICT_RULE, case_breakdown, mean_std, paired_bootstrap

ROLES = {"internal": "internal test", "external": "external test", "val": "validation (selection only)"}
TESTS = ("internal", "external")


# ============================================================================= summary
def summarise(task, runs: list[dict], models: list[str], conditions: list[TrainCondition]) -> dict:
    """Mean ± std over seeds per (model, condition, split, metric), the validation picks, and the comparisons."""
    cells = {}
    for m in models:
        for c in conditions:
            done = [r for r in runs if r["model"] == m and r["condition"] == c.name]
            if done:
                cells.setdefault(m, {})[c.name] = {
                    split: {k: mean_std([r["metrics"][split][k] for r in done]) for k in task.metrics}
                    for split in done[0]["metrics"]}
                cells[m][c.name]["time"] = {"minutes": mean_std([r["seconds"] / 60 for r in done])}
                if all("best_epoch" in r for r in done):
                    cells[m][c.name]["best_epoch"] = mean_std([r["best_epoch"] for r in done])
    selection = {m: select_on_validation(task, cells.get(m, {}), conditions) for m in models}
    comparisons = {m: compare(task, [r for r in runs if r["model"] == m], conditions, selection[m]) for m in models}
    return {"cells": cells, "selection": selection, "comparisons": comparisons}


def select_on_validation(task, row: dict, conditions: list[TrainCondition]) -> dict:
    """The condition, the synthetic condition and the classical baseline a user would pick by mean validation score."""

    def best(names):
        names = [n for n in names if n in row]
        return max(names, key=lambda n: row[n]["val"][task.metrics[0]]["mean"]) if names else None

    return {"any": best([c.name for c in conditions]), "synthetic": best([c.name for c in conditions if c.synthetic]),
            "classical": best([c.name for c in conditions if c.classical])}


def case_values(task, run: dict, split: str):
    """(case ids, per-case values) of a run on a split, or None for runs that saved no per-case scores."""
    cases = run["metrics"][split].get("cases")
    return (cases["ids"], cases["values"]) if cases else None


def compare(task, runs: list[dict], conditions: list[TrainCondition], selection: dict) -> dict:
    """{split: {condition: {"vs_real": ..., "vs_classical": ...}}} from runs with per-case scores."""
    baselines = {"vs_real": "real" if any(c.name == "real" for c in conditions) else "0%",
                 "vs_classical": selection.get("classical")}
    out = {}
    for split in TESTS:
        by = {}  # condition -> seed -> values
        ids, labels = None, None
        for r in runs:
            if split not in r["metrics"] or not (cv := case_values(task, r, split)):
                continue
            ids = ids or cv[0]
            if cv[0] != ids:  # pairing needs the same cases in the same order
                print(f"WARNING: {r['condition']} seed {r['seed']} was measured on other {split} cases; "
                      "left out of the paired comparisons", flush=True)
                continue
            by.setdefault(r["condition"], {})[r["seed"]] = cv[1]
            labels = labels if labels is not None else r["metrics"][split]["cases"].get("labels")
        if not by:
            continue
        for c in conditions:
            for key, base in baselines.items():
                if base and c.name != base and c.name in by and base in by:
                    res = paired_bootstrap(by[c.name], by[base], task.paired_metric, labels)
                    if res:
                        if task.paired_metric == "mean":  # per-case scores: which cases moved
                            res["cases"] = case_breakdown(by[c.name], by[base], ids)
                        out.setdefault(split, {}).setdefault(c.name, {})[key] = {"baseline": base, **res}
    return out


# ============================================================================= markdown
def fmt(cell: dict | None, digits: int = 3) -> str:
    """``mean ± std``; the mean alone for one seed; "–" for a cell whose runs are not done."""
    if not cell:
        return "–"
    mean = f"{cell['mean']:.{digits}f}"
    return f"{mean} ± {cell['std']:.{digits}f}" if cell["n_seeds"] > 1 else mean


def fmt_diff(res: dict | None) -> str:
    if not res:
        return "–"
    seeds = ", ".join(f"{v:+.3f}" for v in res["per_seed"].values())
    return (f"{res['diff']:+.3f} [{res['ci'][0]:+.3f}, {res['ci'][1]:+.3f}] **{res['verdict']}** "
            f"(seeds: {seeds})")


def budget(s: dict) -> str:
    if s.get("train_steps"):
        return f"about {s['train_steps']} optimiser steps per run whatever the condition (epochs scaled to the data)"
    if s.get("select") == "best-val":
        stop = (f", early stop after {s['patience']} epochs without a better validation score"
                if s.get("patience") else "")
        return (f"{s['epochs']} epochs over the training set (each epoch one pass over the real part plus the added "
                f"pairs){stop}; validation after every epoch, test scores of the best-validation checkpoint")
    return f"{s['epochs']} epochs per run (more data, more steps)"


def optimistic(meta: dict, cond: TrainCondition, split: str) -> bool:
    """Scores of a synthetic condition on cases its generator saw: counted when the generator records its
    training case ids (``seen_cases``); otherwise assumed for the internal test while it is carved from the
    train split, and for the validation part (always inside the train split)."""
    gen = meta.get("generator")
    if not (cond.synthetic and gen):
        return False
    if gen.get("seen_cases"):
        return gen["seen_cases"].get(split, 0) > 0
    return split == "val" or (split == "internal" and meta["split_names"].get("test_withheld", False))


def markdown(task, plan: dict, summary: dict, meta: dict) -> str:
    names, conds, cells = meta["split_names"], plan["conditions"], summary["cells"]
    splits = [s for s in ROLES if s in names]
    tests = [s for s in splits if s != "val"]
    lines = [f"# {task.title}: {meta['profile']} profile", ""]
    for split in splits:
        for k in task.metrics:
            head = [c.name + (" †" if optimistic(meta, c, split) else "") for c in conds]
            lines += [f"**{task.metric_labels[k]}, {ROLES[split]}**: {names[split]}; mean ± std over seeds", "",
                      "| model | " + " | ".join(head) + " |", "|---" * (len(conds) + 1) + "|"]
            lines += [f"| {m} | " + " | ".join(fmt(cells.get(m, {}).get(c.name, {}).get(split, {}).get(k))
                                                for c in conds) + " |" for m in plan["models"]]
            lines.append("")
    seen = (meta.get("generator") or {}).get("seen_cases") or {}
    if any(optimistic(meta, c, "internal") for c in conds):
        lines += [f"† Optimistic: the generator trained on {seen['internal']} of the {meta['n_internal']} internal-test "
                  "cases" if seen else "† Optimistic: the generator was trained on all BUSI train-split cases, "
                  "including the ones carved out as the internal test while the BUSI test images are withheld",
                  ""]
        lines[-2] += (". STU is the clean test." if "external" in names else ".")
    elif seen and not any(seen.values()) and any(c.synthetic for c in conds):
        lines += ["The generator trained on none of the validation and test cases (its recorded training case "
                  "ids): every score here is clean.", ""]
    if any(optimistic(meta, c, "val") for c in conds):
        lines += ["† on validation: the validation part lies inside the BUSI train split the generator may have "
                  "seen, so a synthetic condition's validation score (and a pick made on it) can be optimistic.", ""]
    lines += comparison_tables(task, plan, summary, meta, tests)
    key = task.metrics[0]
    lines += [f"**Picked on validation** (highest mean validation {task.metric_labels[key]}), with its test scores", "",
              "| model | pick (any condition) | " + " | ".join(ROLES[s] for s in tests)
              + " | pick (synthetic only) | " + " | ".join(ROLES[s] for s in tests) + " |",
              "|---" * (3 + 2 * len(tests)) + "|"]
    for m in plan["models"]:
        row, cols = cells.get(m, {}), []
        for which in ("any", "synthetic"):
            pick = summary["selection"][m][which]
            cols.append(pick or "–")
            cols += [fmt(row.get(pick, {}).get(s, {}).get(key)) for s in tests]
        lines.append(f"| {m} | " + " | ".join(cols) + " |")
    lines += ["", "**Minutes per run** (train + evaluation), mean ± std over seeds", "",
              "| model | " + " | ".join(c.name for c in conds) + " |", "|---" * (len(conds) + 1) + "|"]
    lines += [f"| {m} | " + " | ".join(fmt(cells.get(m, {}).get(c.name, {}).get("time", {}).get("minutes"), 1)
                                       for c in conds) + " |" for m in plan["models"]]
    if any("best_epoch" in cell for row in cells.values() for cell in row.values()):
        lines += ["", f"**Best-validation epoch** (of {plan['settings']['epochs']}), mean ± std over seeds", "",
                  "| model | " + " | ".join(c.name for c in conds) + " |", "|---" * (len(conds) + 1) + "|"]
        lines += [f"| {m} | " + " | ".join(fmt(cells.get(m, {}).get(c.name, {}).get("best_epoch"), 1) for c in conds)
                  + " |" for m in plan["models"]]
    lines += ["", *notes(task, plan, meta)]
    return "\n".join(lines)


def comparison_tables(task, plan: dict, summary: dict, meta: dict, tests: list[str]) -> list[str]:
    """Per model and test set: each condition minus `real` and minus the best classical condition."""
    lines = []
    label = task.metric_labels[task.metrics[0]]
    for m in plan["models"]:
        comp, pick = summary["comparisons"].get(m, {}), summary["selection"][m].get("classical")
        for split in tests:
            if split not in comp:
                continue
            lines += [f"**Paired differences, {m}, {label} on the {ROLES[split]}** ({meta['split_names'][split]}): "
                      f"mean over seeds [paired bootstrap 95% CI over test cases, pooled over seeds] verdict "
                      f"(per-seed differences). Best classical condition on validation: `{pick or '–'}`.", "",
                      "| condition | vs `real` | vs best classical |", "|---|---|---|"]
            for c in plan["conditions"]:
                row = comp[split].get(c.name, {})
                if row:
                    name = c.name + (" †" if optimistic(meta, c, split) else "")
                    lines.append(f"| {name} | {fmt_diff(row.get('vs_real'))} | {fmt_diff(row.get('vs_classical'))} |")
            lines.append("")
    lines += case_tables(plan, summary, meta, tests)
    if lines:
        lines += [f"Verdict rule: {VERDICT_RULE}. Bootstrap: 2000 resamples of the test cases, the same cases for "
                  "both conditions and all seeds, the difference averaged over the seeds both conditions have. The "
                  "CI covers the sampling of test cases, not of training seeds: the per-seed differences show "
                  "whether the sign holds on every seed.", ""]
    return lines


def case_tables(plan: dict, summary: dict, meta: dict, tests: list[str]) -> list[str]:
    """Per model and test set, each condition against `real` case by case: a broad shift or a few failures."""
    lines = []
    for m in plan["models"]:
        comp = summary["comparisons"].get(m, {})
        for split in tests:
            rows = [(c, comp.get(split, {}).get(c.name, {}).get("vs_real", {}).get("cases")) for c in plan["conditions"]]
            rows = [(c, b) for c, b in rows if b]
            if not rows:
                continue
            fail = rows[0][1]["fail_below"]
            lines += [f"**Case by case against `real`, {m}, {ROLES[split]}** (each case's score averaged over the "
                      f"seeds both have): a broad shift moves the median case, a few failures only the mean.", "",
                      f"| condition | median case difference | cases worse | cases failed (< {fail:g}) that `real` "
                      "gets | largest drops (case: real -> condition) |", "|---|---|---|---|---|"]
            for c, b in rows:
                drops = ", ".join(f"{i}: {x:.2f} -> {y:.2f}" for i, x, y in b["worst"])
                name = c.name + (" †" if optimistic(meta, c, split) else "")
                lines.append(f"| {name} | {b['median_case_diff']:+.3f} | {100 * b['share_worse']:.0f}% | "
                             f"{', '.join(b['failed']) or 'none'} | {drops} |")
            lines.append("")
    return lines


def notes(task, plan: dict, meta: dict) -> list[str]:
    from .splits import SPLIT_SEED  # splits loads torch and sklearn: not at import (a trial's refusals are instant)

    s, gen, names = plan["settings"], meta.get("generator"), meta["split_names"]
    out = ["- Conditions: " + "; ".join(f"`{c.name}` {c.describe()}" for c in plan["conditions"]) + ".",
           f"- Train: {meta['n_train']} real BUSI train cases; validation ({meta['n_val']}): {names['val']}; "
           f"internal test ({meta['n_internal']}): {names['internal']}"
           + (f"; external: {names['external']} ({meta['n_external']})" if "external" in names else "") + ".",
           f"- {budget(s)}; {s['size']} px, batch {s['batch_size']}, AdamW lr {s['lr']} with cosine decay, "
           f"bf16 {s['bf16']}; seeds {plan['seeds']} (initialisation, order, added subset); split fixed "
           f"(seed {SPLIT_SEED}).",
           f"- Runs done: {meta['runs_done']} of {meta['runs_planned']}; time per run {meta['seconds_per_run']}; "
           f"training time of the runs shown {meta['run_seconds_total'] / 60:.1f} min; this invocation "
           f"{meta['wall_seconds'] / 60:.1f} min (bank generation {meta['bank_seconds'] / 60:.1f} min)."]
    return out + (generator_notes(gen, meta["bank"], names) if gen else [])


def generator_notes(gen: dict, bank: dict | None, names: dict) -> list[str]:
    """Which generator and bank, what it was trained on, and what that means for the internal test."""
    out = [f"- Generator `{gen['ref']}` ({gen['generator']}, checkpoint {gen['checkpoint_hash']}, "
           f"conditions {gen['conditions'] or 'none'})."]
    if bank:
        out.append(f"- Bank: {bank['pairs']} pairs sampled with {bank['scheduler']} x {bank['steps']} steps "
                   "at the real class shares; each ratio and seed uses a fixed subset of it.")
        if bank.get("options"):
            out.append(f"- Sampler options: {', '.join(f'{k}={v}' for k, v in sorted(bank['options'].items()))}.")
        if bank.get("gate"):
            g = bank["gate"]
            out.append(f"- Quality gate: only pairs the judge (trained on the benchmark's train part only) scores at "
                       f"Dice >= {g['dice']:g}, up to {g.get('tries')} draws per pair"
                       + (f"; making the bank it rejected {g['rejected']} of {g['draws']} draws "
                          f"({g['rejected'] / g['draws']:.1%})." if g.get("draws") else "."))
    out.append(f"- Training data per its model card: {gen['card_data'] or 'not stated (no model card)'}."
               + (f" Its synthaug.json lists {gen['training_cases']} training case ids, all in the BUSI train split."
                  if gen["busi_train_only"] else " **Not confirmed to be the BUSI train split only.**"))
    if names.get("test_withheld"):
        counted = (gen.get("seen_cases") or {}).get("internal")
        carved = (f"- The BUSI test images are withheld, so the internal test is carved from the "
                  f"{gen['busi_train_cases']} train-split cases.")
        if counted == 0:
            val = " (nor on the validation part)" if gen["seen_cases"].get("val") == 0 else ""
            out.append(f"{carved} This generator trained on none of them{val}, so its conditions' scores there "
                       "are clean.")
            return out
        seen = ("This one was trained on all of them, so it has seen the internal-test cases"
                if gen["training_cases"] == gen["busi_train_cases"] else
                f"This one trained on {counted} of the internal-test cases" if counted is not None else
                "A generator trained on all of them has seen the internal-test cases")
        clean = " The external test is free of that." if "external" in names else ""
        out.append(f"{carved} {seen}, which can flatter the synthetic conditions there.{clean}")
    return out
