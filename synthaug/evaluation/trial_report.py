"""What a trial found, for the person who ran it: verdicts, the ratio validation picks, the settings to use.

The numbers are the benchmark's (``report.summarise``: mean ± std over seeds,
paired bootstrap differences against ``real`` and the best classical
condition, picks on validation). The recommendation follows one rule
(``recommend``): the synthetic condition validation picks is recommended,
at its ratio, only when its difference on the test part is a ``gain`` against
``real`` and against the best classical condition (when one ran): ordinary
augmentation costs nothing, pairs cost a generator and its sampling time, so
pairs level with it are no reason to use them. Otherwise the trial says it
found no gain and what to train with instead. The verdicts are read on a test
the generator never saw (``decision_split``): a generator trained on the test
part flatters its own pairs there, so a clean ``--external`` test decides.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..errors import SynthaugError
from .report import fmt, fmt_diff, summarise
from .stats import GAIN, LOSS, VERDICT_RULE


SPLIT_NAMES = {"internal": "the test part", "external": "the external test"}


def default_out(raw: Path) -> Path:
    """``RAW_trial`` beside RAW."""
    return raw.parent / f"{raw.name}_trial"


def check_out(raw: Path, out: Path) -> Path:
    """Refuse an output folder inside RAW (or RAW itself): a trial never writes into the data it reads."""
    r, o = raw.resolve(), out.resolve()
    if o == r or r in o.parents:
        raise SynthaugError(f"--out {out} is inside {raw}: a trial never writes into the folder it reads; "
                            "choose a folder outside it")
    return out


def check_folders(raw: Path, out: Path | None, external: str | None) -> Path:
    """The trial's output folder, or one clear refusal: checked before the trial loads torch (seconds)."""
    if not raw.is_dir():
        raise SynthaugError(f"{raw} is not a folder")
    out = check_out(raw, out or default_out(raw))
    if external:
        check_out(Path(external), out)
    return out


def decision_split(seen: dict) -> str:
    """The test the recommendation is read on: the test part, unless the generator trained on some of its cases
    and an external test it never saw exists. ``seen``: {split: test cases the generator trained on, None when
    it records no case ids}."""
    if seen.get("internal") and seen.get("external") == 0:
        return "external"
    return "internal"


def recommend(summary: dict, conditions, model: str, split: str = "internal") -> dict:
    """The decision, from the validation picks and the paired verdicts on ``split`` (constructed numbers in,
    so it is testable): {"use_synthetic", "condition", "ratio", "ordinary", "vs_real", "vs_classical", "why",
    "split"}."""
    where = SPLIT_NAMES[split]
    pick = summary["selection"].get(model, {})
    comp = summary["comparisons"].get(model, {}).get(split, {})
    classical = pick.get("classical")
    syn = pick.get("synthetic")
    if syn is None:
        return {"use_synthetic": False, "condition": None, "ratio": None, "classical": classical, "split": split,
                "why": "no synthetic condition was run (or finished)"}
    cond = next(c for c in conditions if c.name == syn)
    vs_real = comp.get(syn, {}).get("vs_real", {}).get("verdict")
    vs_cls = comp.get(syn, {}).get("vs_classical", {}).get("verdict") if classical else None
    use = vs_real == GAIN and (classical is None or vs_cls == GAIN)
    if use:
        why = (f"`{syn}` (picked on validation) is a gain over `real`"
               + (f" and over `{classical}`" if classical else "") + f" on {where}")
    else:
        fallback = classical if classical and comp.get(classical, {}).get("vs_real", {}).get("verdict") == GAIN \
            else "real"
        if vs_real != GAIN:
            against = ("a loss against" if vs_real == LOSS else "not a detectable gain over" if vs_real else
                       "not measured against") + " `real`" + (f" and a loss against `{classical}`" if vs_cls == LOSS
                                                             else "")
        else:
            against = (f"a gain over `real` but {'a loss against' if vs_cls == LOSS else 'no detectable gain over'} "
                       f"`{classical}`, which needs no generator")
        why = f"no gain: on {where}, `{syn}` (picked on validation) is {against}; train on `{fallback}`"
    return {"use_synthetic": use, "condition": syn, "ratio": cond.ratio if use else None,
            "picked_ratio": cond.ratio, "ordinary": cond.augment, "vs_real": vs_real, "vs_classical": vs_cls,
            "classical": classical, "why": why, "split": split}


def settings_lines(rec: dict, raw: str, generator: str) -> list[str]:
    """The commands to use what the trial found (only when it found a gain)."""
    if not rec["use_synthetic"]:
        return [f"**Recommendation: no synthetic data.** {rec['why']}."]
    r = f"{rec['ratio']:g}"
    aug = " with ordinary augmentation on every item" if rec["ordinary"] else ""
    return [f"**Recommendation: ratio {r}{aug}.** {rec['why']}.", "",
            "```", f"synthaug expand {raw} --generator {generator} --ratio {r}   # nnU-Net: add the pairs to RAW",
            f"SyntheticMix(real_dataset, generator_or_bank, ratio={r})   # smp / timm loops", "```"]


def case_ci(values_by_seed: dict, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean test score over seeds and its 95% bootstrap CI over test cases (the figure's error bars)."""
    a = np.mean([np.asarray(v, float) for v in values_by_seed.values()], axis=0)
    idx = np.random.default_rng(seed).integers(0, a.size, size=(n_boot, a.size))
    low, high = np.percentile(a[idx].mean(1), [2.5, 97.5])
    return float(a.mean()), float(low), float(high)


def test_scores(runs: list[dict], conditions, split: str) -> dict:
    """{condition: (mean, low, high)} on ``split`` from the runs' per-case scores."""
    out = {}
    for c in conditions:
        by = {r["seed"]: r["metrics"][split]["cases"]["values"] for r in runs
              if r["condition"] == c.name and split in r["metrics"]}
        if by:
            out[c.name] = case_ci(by)
    return out


def figure(runs: list[dict], conditions, scores: dict, names: dict, out: Path) -> Path:
    """Validation curves (lowest seed, every condition; dot: checkpoint kept) and test scores with CIs."""
    from .figures import plt

    panels = [s for s in ("internal", "external") if s in scores]
    fig, axes = plt.subplots(1, 1 + len(panels), figsize=(5.5 * (1 + len(panels)), 4), squeeze=False)
    ax = axes[0][0]
    seed = min((r["seed"] for r in runs), default=0)
    for c in conditions:
        r = next((r for r in runs if r["seed"] == seed and r["condition"] == c.name and r.get("curve")), None)
        if r:
            (line,) = ax.plot([p["epoch"] for p in r["curve"]], [p["val"]["dsc"] for p in r["curve"]], label=c.name)
            ax.plot([r["best_epoch"]], [r["curve"][r["best_epoch"] - 1]["val"]["dsc"]], "o", color=line.get_color())
    ax.set(title=f"validation DSC, seed {seed}", xlabel="epoch", ylabel="DSC")
    for ax, split in zip(axes[0][1:], panels):
        names_ = [c.name for c in conditions if c.name in scores[split]]
        m = np.array([scores[split][n] for n in names_])
        ax.errorbar(range(len(names_)), m[:, 0], yerr=[m[:, 0] - m[:, 1], m[:, 2] - m[:, 0]], fmt="o", capsize=4)
        if "real" in scores[split]:
            ax.axhline(scores[split]["real"][0], linestyle="--", color="grey", linewidth=1)
        ax.set_xticks(range(len(names_)))
        ax.set_xticklabels(names_, rotation=30, ha="right", fontsize=8)
        ax.set(title=f"test DSC ({'held-out part' if split == 'internal' else names.get(split, split)}), 95% CI",
               ylabel="DSC")
    for a in axes[0]:
        a.grid(alpha=0.3)
        if a.has_data() and a is axes[0][0]:
            a.legend(fontsize=7)
    fig.tight_layout()
    tmp = out.with_name(".trial.png.tmp")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    os.replace(tmp, out)
    return out


def markdown(req, plan: dict, mplan: dict, parts: dict, record: dict, summary: dict, rec: dict, scores: dict,
             runs: list[dict], model: str, wall: float) -> str:
    s, conds, names = mplan["settings"], mplan["conditions"], parts["names"]
    n = {k: len(v) for k, v in parts["sets"].items()}
    lines = [f"# synthaug trial: {req.raw}", "", *settings_lines(rec, req.raw, req.generator), "",
             f"Validation picks `{rec['condition'] or '–'}` among the synthetic conditions (ratio "
             f"{rec.get('picked_ratio', 0) or 0:g}) and `{rec.get('classical') or '–'}` among the classical ones.", ""]
    for split in ("internal", "external"):
        comp = summary["comparisons"].get(model, {}).get(split)
        if not comp:
            continue
        lines += [f"## {'Test part' if split == 'internal' else 'External test'}: {names[split]} ({n[split]} cases)",
                  "", "| condition | test DSC [95% CI] | vs `real` | vs best classical |", "|---|---|---|---|"]
        for c in conds:
            sc = scores.get(split, {}).get(c.name)
            cell = f"{sc[0]:.3f} [{sc[1]:.3f}, {sc[2]:.3f}]" if sc else "–"
            row = comp.get(c.name, {})
            lines.append(f"| {c.name} | {cell} | {fmt_diff(row.get('vs_real'))} | {fmt_diff(row.get('vs_classical'))} |")
        lines.append("")
    cells = summary["cells"].get(model, {})
    lines += ["Validation DSC (selection only), mean ± std over seeds: "
              + ", ".join(f"`{c.name}` {fmt(cells.get(c.name, {}).get('val', {}).get('dsc'))}" for c in conds), "",
              f"Verdict rule: {VERDICT_RULE}. The CI resamples the test cases (the same ones for both conditions and "
              "every seed); per-seed differences in brackets show whether the sign holds on every seed.", "",
              "## How it was run", "",
              f"- Cases: {n['train']} train, {n['val']} validation ({names['val']}), {n['internal']} test "
              f"({names['internal']})" + (f", {n['external']} external ({names['external']})" if "external" in n
                                          else "") + ".",
              f"- Model `{model}`, {s['epochs']} epochs (at least {s['min_batches']} batches each), batch "
              f"{s['batch_size']}, AdamW lr {s['lr']} cosine, {s['size']} px, bf16 {s['bf16']}; validation after "
              f"every epoch, test scores of the best-validation checkpoint; seeds {mplan['seeds']}.",
              f"- Runs: {len(runs)} of {len(mplan['seeds']) * len(conds)}; wall time of this invocation "
              f"{wall / 60:.1f} min; measured {plan['measured']['step']:.3f} s a step, "
              f"{plan['measured']['val']:.2f} s a validation pass; planned ~{plan['estimate_seconds'] / 60:.0f} min.",
              "- Budget: " + ("; ".join(plan["cut"]) if plan["cut"] else
                              "nothing cut" + (f" (--minutes {req.minutes:g})" if req.minutes else "")) + ".",
              *(generator_lines(record, rec.get("split", "internal")) if any(c.synthetic for c in conds) else [])]
    return "\n".join(lines) + "\n"


def generator_lines(record: dict, split: str = "internal") -> list[str]:
    """Which generator, what its card says it was trained on, whether it saw the test cases, and so which test
    the recommendation was read on (``split``)."""
    out = [f"- Generator `{record['ref']}` ({record['generator']}, checkpoint {record['checkpoint_hash']}); "
           f"training data per its card: {record['card_data'] or 'not stated'}."]
    seen, seen_ext = record.get("held_out_seen"), record.get("external_seen")
    if seen is None:
        out.append("- It records no training case ids, so whether it saw the test cases cannot be checked.")
    elif not seen:
        out.append(f"- None of the test cases is among the {record['training_cases']} case ids it trained on.")
    elif split == "external":
        out.append(f"- **It was trained on {seen} of the test part's cases** (case ids in its synthaug.json), which "
                   "can flatter the synthetic conditions there, so the recommendation is read on the external test, "
                   "which it never saw.")
    else:
        out.append(f"- **Warning: it was trained on {seen} of the test cases** (case ids in its synthaug.json), "
                   "which can flatter the synthetic conditions, and the recommendation rests on them; "
                   + (f"it also trained on {seen_ext} of the external test's cases." if seen_ext else
                      "add an external test it never saw (--external) to decide on clean cases."))
    return out


def write_trial(req, out: Path, task, mplan: dict, plan: dict, parts: dict, record: dict, banks: dict,
                shares: dict, runs: list[dict], model: str, wall: float) -> Path:
    """trial.json (every number and run), trial.md and trial.png, each written whole or not at all."""
    summary = summarise(task, runs, [model], mplan["conditions"])
    rec = recommend(summary, mplan["conditions"], model,
                    decision_split({"internal": record.get("held_out_seen"), "external": record.get("external_seen")}))
    scores = {split: test_scores(runs, mplan["conditions"], split) for split in ("internal", "external")
              if split in parts["sets"]}
    png = figure(runs, mplan["conditions"], scores, parts["names"], out / "trial.png")
    text = markdown(req, plan, mplan, parts, record, summary, rec, scores, runs, model, wall)
    text += f"\n![validation curves and test scores]({png.name})\n"
    payload = {"request": asdict(req), "recommendation": rec, "plan": plan, "model": model,
               "conditions": [c.__dict__ for c in mplan["conditions"]], "seeds": mplan["seeds"],
               "settings": mplan["settings"], "split_names": parts["names"],
               "cases": {k: [r.case_id for r in v.records] for k, v in parts["sets"].items()},
               "generator": {k: v for k, v in record.items() if k != "info"},
               "banks": {k: b.record for k, b in banks.items()}, "class_shares": {str(k): v for k, v in shares.items()},
               "test_scores": scores, "summary": summary, "wall_seconds": wall, "runs": runs}
    for name, body in (("trial.md", text), ("trial.json", json.dumps(payload, indent=2, default=float) + "\n")):
        tmp = out / f".{name}.tmp"
        tmp.write_text(body, encoding="utf-8")
        os.replace(tmp, out / name)
    return out / "trial.json"
