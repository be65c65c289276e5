"""``synthaug fit``: one command from a raw folder to a generator checkpoint, within a time budget.

Trains every part of a generator in order -- bus: SCMG masks, VAE, LDM (on that
VAE's latents), mask ControlNet (on that LDM), then ``assemble_bus``; pig: PIG --
with the recipes and the one training loop ``synthaug train`` uses
(``training.run.run_recipe``), each part in ``OUT/<part>/``, so a rerun resumes
from the loop's saved states and skips finished parts.

The budget (``minutes``) is shared by the parts in proportion to their
recipe's full cost: a few steps of each part are timed first (on a small slice
of the data, in ``OUT/.calibration``) and every recipe's step count is scaled by
one factor so the sum fits. The machine may be busier or idler later (these
CPUs are shared), so each part's steps are set again when it starts, from the
time left and the step cost seen so far, and the loop stops it at its share of
that time: the run ends by the deadline. ``OUT/fit_plan.json`` holds the plan,
the measured costs and the steps each started part trains to; a rerun keeps
them. Steps never exceed the recipe's: a budget is an upper bound.

Data without tumour types trains one class (SCMG: one prior; LDM: one prompt
family; PIG: unconditional); with types (``case_metadata.json``), class-conditional.
Under ``accelerate launch`` every process runs this module; the main process
alone writes the plan, cards and the assembled checkpoint.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

from .errors import SynthaugError

PARTS = {"bus": ("scmg", "vae", "ldm", "controlnet"), "pig": ("pig",)}
PLAN_NAME = "fit_plan.json"
CHECKPOINT = "checkpoint"
CALIBRATION_STEPS = 3  # timed steps per part, after one warm-up step
MARGIN = 0.95  # share of the remaining budget planned for training steps; the rest absorbs estimate errors
ASSEMBLY_SECONDS = 15  # joining the parts into OUT/checkpoint at the end


def _state():
    """The process group, made as the training loop makes it: without a GPU the processes of
    ``accelerate launch``/``torchrun`` join over gloo (a PartialState made without ``cpu`` would leave
    each one alone, and it is a singleton: the first one made decides)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _part_recipes(generator: str, profile: str, assignments, labelled: bool, out: Path) -> dict[str, dict]:
    """Each part's recipe, with the user's ``--set``s, the class mode and the paths of the parts it needs.

    An assignment ``PART:section.key=value`` applies to that part only; ``section.key=value`` to all.
    """
    from .training.recipes import apply_overrides, load_recipe

    recipes = {}
    for part in PARTS[generator]:
        mine = []
        for a in assignments:
            scope, sep, rest = a.partition(":")
            if sep and "=" not in scope:
                if scope not in PARTS[generator]:
                    raise SynthaugError(f"--set {a!r}: {scope} is not a part of {generator} "
                                        f"({', '.join(PARTS[generator])})")
                if scope == part:
                    mine.append(rest)
            else:
                mine.append(a)
        recipe = apply_overrides(load_recipe(part, profile), mine)
        model = recipe["model"]
        if part in ("scmg", "ldm", "controlnet"):
            model["single_class"] = not labelled
        if part == "pig" and not labelled:
            model.update(class_conditional=False, class_dropout=0.0)
        if part in ("ldm", "controlnet"):
            model["vae"] = str(out / "vae" / "final")
        if part == "controlnet":
            model["ldm"] = str(out / "ldm" / "final")
        recipes[part] = recipe
    return recipes


def _with_paths(recipe: dict, root: Path) -> dict:
    """A copy of ``recipe`` whose VAE/LDM point into ``root`` (the calibration runs)."""
    if recipe["objective"] not in ("ldm", "controlnet"):
        return recipe
    model = dict(recipe["model"])
    for key in ("vae", "ldm"):
        if key in model:
            model[key] = str(root / key / "final")
    return {**recipe, "model": model}


def _datasets(raw: Path, recipes: dict[str, dict]) -> dict[int, object]:
    """Training cases of ``raw`` (real ones only, never imagesTs), loaded once per recipe size."""
    from .training.data import training_dataset

    sizes = {r.get("data", {}).get("size", 128) for r in recipes.values()}
    return {s: training_dataset(raw, size=s) for s in sorted(sizes)}


def _calibrate(recipes: dict[str, dict], datasets: dict, root: Path, steps: int = CALIBRATION_STEPS) -> dict:
    """Seconds per step and set-up seconds (per case) of every part, from ``steps`` timed steps on a slice."""
    from .data.datasets import PairDataset
    from .training.loop import train
    from .training.objectives import create_objective
    from .training.recipes import train_config

    result = {}
    for part, recipe in recipes.items():
        full = datasets[recipe.get("data", {}).get("size", 128)]
        cfg = train_config(recipe, steps=steps + 1, max_minutes=None, warmup_steps=0, save_every=10 ** 9,
                           log_every=10 ** 9)
        sub = PairDataset(full.records[: max(cfg.batch_size, min(len(full), 2 * cfg.batch_size))], size=full.size)
        r = _with_paths(recipe, root)
        stamps: list[float] = []
        t0 = time.perf_counter()
        objective = create_objective(r["objective"], r["model"])
        train(objective, sub, cfg, root / part, resume=False, on_step=lambda s: stamps.append(time.perf_counter()),
              progress=False)
        t_end = time.perf_counter()
        per_step = (stamps[-1] - stamps[1]) / max(1, len(stamps) - 2)
        result[part] = {"sec_per_step": round(per_step, 4), "setup_seconds": round(stamps[0] - t0, 2),
                        "setup_cases": len(sub), "export_seconds": round(t_end - stamps[-1], 2),
                        "batch_size": cfg.batch_size}
    return result


def make_plan(recipes: dict[str, dict], calibration: dict, n_cases: int, minutes: float | None,
              spent_seconds: float) -> dict:
    """Steps per part: each recipe's step count times one factor so the parts fit the budget.

    Set-up (data preparation, latent caching) scales with the cases; export does not.
    """
    overhead = {p: c["setup_seconds"] * max(1.0, n_cases / c["setup_cases"]) + c["export_seconds"]
                for p, c in calibration.items()}
    full = {p: r["train"]["steps"] * calibration[p]["sec_per_step"] for p, r in recipes.items()}
    scale = 1.0
    if minutes is not None:
        budget = (minutes * 60 - spent_seconds - sum(overhead.values())) * MARGIN
        if budget <= 0:
            need = math.ceil((spent_seconds + sum(overhead.values())) / 60)
            raise SynthaugError(f"--minutes {minutes:g} does not cover even data preparation and export here "
                                f"(about {need} min); give at least {need + 1}")
        scale = min(1.0, budget / sum(full.values()))
    parts = {}
    for p, r in recipes.items():
        t = r["train"]
        part = {"recipe_steps": t["steps"], "batch_size": t["batch_size"],
                "recipe_warmup_steps": t.get("warmup_steps", 100), "recipe_save_every": t.get("save_every", 250),
                "recipe_log_every": t.get("log_every", 25), "sec_per_step": calibration[p]["sec_per_step"],
                "overhead_seconds": round(overhead[p], 1)}
        _scale_part(part, t["steps"] * scale)
        part["train_seconds"] = round(part["steps"] * part["sec_per_step"], 1)
        parts[p] = part
    return {"scale": round(scale, 4), "parts": parts,
            "planned_minutes": round((spent_seconds + sum(p["train_seconds"] + p["overhead_seconds"]
                                                          for p in parts.values())) / 60, 1)}


def _scale_part(p: dict, steps: float) -> None:
    """Set a part's steps (at most its recipe's) and the step-count-bound settings that go with them."""
    scale = min(1.0, max(2, int(steps)) / p["recipe_steps"])
    p["steps"] = max(2, min(p["recipe_steps"], int(steps)))
    p["warmup_steps"] = min(p["recipe_warmup_steps"], round(p["recipe_warmup_steps"] * scale))
    p["save_every"] = max(1, min(p["recipe_save_every"], p["steps"] // 4))
    p["log_every"] = max(1, min(p["recipe_log_every"], p["steps"] // 10))


def _measure(plan: dict, part: str, stamps: list[tuple[int, float]]) -> None:
    """Record a part's seconds per step as trained (not counting its first step) and the median ratio
    measured/calibrated over the parts so far, which later parts' steps are set with."""
    if len(stamps) <= 2:
        return
    (s0, t0), (s1, t1) = stamps[1], stamps[-1]
    parts = plan["parts"]
    parts[part]["measured_sec_per_step"] = round((t1 - t0) / max(1, s1 - s0), 4)
    ratios = sorted(q["measured_sec_per_step"] / q["sec_per_step"] for q in parts.values()
                    if q.get("measured_sec_per_step"))
    plan["slowdown"] = round(float(ratios[len(ratios) // 2]), 3)


def _done_steps(final: Path) -> int:
    info = _read_json(final / "synthaug.json")
    return int(info.get("steps", 0)) if info else 0


def finished_parts(out: str | Path) -> list[str]:
    """Parts of the fit in ``out`` that reached their planned steps (their ``final`` is what the next part uses)."""
    out = Path(out)
    plan = _read_json(out / PLAN_NAME) or {"parts": {}}
    return [part for part, p in plan["parts"].items()
            if p.get("started") and _done_steps(out / part / "final") >= p["steps"]]


def fit(raw: str | Path, generator: str = "bus", profile: str = "cpu-128", out: str | Path = "fit",
        minutes: float | None = None, assignments=(), progress: bool = True) -> Path:
    """Train every part of ``generator`` on ``raw``'s training cases into ``out``; returns ``out/checkpoint``."""
    t_start = time.perf_counter()
    raw, out = Path(raw), Path(out)
    if generator not in PARTS:
        raise SynthaugError(f"unknown generator {generator!r} for fit; choose {' or '.join(PARTS)}")
    if minutes is not None and not minutes > 0:
        raise SynthaugError(f"--minutes must be positive, got {minutes:g}")
    if not (raw / "dataset.json").is_file():
        raise SynthaugError(f"{raw} is not an nnU-Net raw dataset folder (no dataset.json): convert your data "
                            "first, e.g. synthaug convert folder IMAGES MASKS DST_RAW --dataset-id N")
    from tqdm.auto import tqdm  # after the cheap checks: a wrong folder is refused before torch loads

    from .training.run import run_recipe

    state = _state()
    plan_path = out / PLAN_NAME
    plan = _read_json(plan_path)
    if plan and (plan["generator"], plan["profile"], plan["raw"]) != (generator, profile, str(raw.resolve())):
        raise SynthaugError(f"{out} holds a fit of {plan['generator']} ({plan['profile']}) on {plan['raw']}; "
                            "resume it with the same arguments or choose another --out")
    if plan and list(plan["assignments"]) != list(assignments):
        raise SynthaugError(f"{out} was fitted with --set {' '.join(plan['assignments']) or '(none)'}; "
                            "resume with the same --set values or choose another --out")

    # labels decide the class mode; the cases are read once per size
    from .training.data import training_dataset

    probe = training_dataset(raw, size=8)
    labelled = any(c >= 0 for c in probe.labels)
    recipes = _part_recipes(generator, profile, list(assignments), labelled, out)
    datasets = _datasets(raw, recipes)
    n_cases = len(probe)

    if plan is None:
        calibration = _calibrate(recipes, datasets, out / ".calibration")
        if state.is_main_process:
            plan = {"generator": generator, "profile": profile, "raw": str(raw.resolve()), "minutes": minutes,
                    "assignments": list(assignments), "n_cases": n_cases,
                    "classes": "benign/malignant" if labelled else "single (no tumour types)",
                    "calibration": calibration,
                    **make_plan(recipes, calibration, n_cases, minutes, time.perf_counter() - t_start)}
            out.mkdir(parents=True, exist_ok=True)
            _write_json(plan_path, plan)
            shutil.rmtree(out / ".calibration", ignore_errors=True)
        state.wait_for_everyone()
        plan = _read_json(plan_path)  # every process trains the main process's plan
    else:
        state.print(f"resuming {out}: finished parts are kept, started ones continue to their planned steps")

    parts = plan["parts"]
    # The budget is a deadline: each part, when it starts, gets the share of the time left that its
    # recipe's cost earns among the parts still to run, its steps are set from the step cost seen so far
    # (a machine busier or idler than at calibration) and the loop stops it at its share. Time one part
    # does not use goes to the next; a rerun gets the budget again and keeps the steps of started parts.
    budget = minutes if minutes is not None else plan["minutes"]
    deadline = t_start + budget * 60 if budget is not None else None
    ends = (f", ends by {time.strftime('%H:%M', time.localtime(time.time() + deadline - time.perf_counter()))}"
            if deadline is not None else "")
    cost = {p: parts[p]["steps"] * parts[p]["sec_per_step"] for p in parts}
    bar = tqdm(total=round(sum(cost.values()), 1), unit="s", desc="fit", dynamic_ncols=True, mininterval=2.0,
               disable=not (progress and state.is_main_process),
               bar_format="{desc}{percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}")
    done_before = 0.0
    names = list(parts)
    for part in names:
        folder = out / part
        bar.set_description(f"fit {part}")
        if part in finished_parts(out):
            done_before += cost[part]
            bar.update(min(bar.total, round(done_before, 2)) - bar.n)
            continue
        share = None
        if deadline is not None:
            later = names[names.index(part):]
            spare = (deadline - time.perf_counter() - ASSEMBLY_SECONDS
                     - sum(parts[q]["overhead_seconds"] for q in later)) * MARGIN
            todo = {q: (parts[q]["recipe_steps"] if not parts[q].get("started") else
                        max(0, parts[q]["steps"] - _done_steps(out / q / "final"))) * parts[q]["sec_per_step"]
                    for q in later}
            share = max(3.0, spare * todo[part] / max(sum(todo.values()), 1e-9))
        if state.is_main_process and not parts[part].get("started"):
            if share is not None:  # steps from the share and the step cost seen so far
                _scale_part(parts[part], share / (parts[part]["sec_per_step"] * plan.get("slowdown", 1.0)))
            parts[part]["started"] = True
            _write_json(plan_path, plan)
        state.wait_for_everyone()
        plan = _read_json(plan_path)  # every process trains the steps the main process chose
        parts = plan["parts"]
        p = parts[part]
        cost[part] = p["steps"] * p["sec_per_step"]
        bar.total = round(sum(cost.values()), 1)
        recipe = recipes[part]
        part_start = time.perf_counter()
        while True:
            stamps: list[tuple[int, float]] = []

            def tick(step, p=p, base=done_before):
                stamps.append((step, time.perf_counter()))
                bar.set_postfix_str(f"step {step}/{p['steps']}{ends}", refresh=False)
                bar.update(min(bar.total, round(base + step * p["sec_per_step"], 2)) - bar.n)

            left = None if share is None else share + p["overhead_seconds"] - (time.perf_counter() - part_start)
            run_recipe(recipe, raw, folder, steps=p["steps"], resume=True,
                       max_minutes=None if left is None else max(0.05, left - p["overhead_seconds"]) / 60,
                       dataset=datasets[recipe.get("data", {}).get("size", 128)], on_step=tick, progress=False,
                       train_overrides={k: p[k] for k in ("warmup_steps", "save_every", "log_every")})
            if state.is_main_process:
                _measure(plan, part, stamps)
                # a part that reached its steps early (the machine got faster than measured) goes on with
                # the time it has left, paying its set-up (data, latent caching) once more
                left = None if share is None else share + p["overhead_seconds"] - (time.perf_counter() - part_start)
                done = _done_steps(folder / "final")
                extra = 0
                if left is not None and done >= p["steps"] and p.get("measured_sec_per_step"):
                    extra = int(0.9 * (left - p["overhead_seconds"]) / p["measured_sec_per_step"])
                    extra = min(extra, p["recipe_steps"] - done)
                p["run_again"] = extra >= max(10, done // 10)
                if p["run_again"]:
                    p["steps"] = done + extra
                _write_json(plan_path, plan)
            state.wait_for_everyone()
            plan = _read_json(plan_path)
            parts = plan["parts"]
            p = parts[part]
            if not p.pop("run_again", False):
                break
            cost[part] = p["steps"] * p["sec_per_step"]
            bar.total = round(sum(cost.values()), 1)
        done_before += cost[part]
    bar.close()

    checkpoint = out / CHECKPOINT
    if state.is_main_process:
        _export(generator, out, checkpoint, plan, time.perf_counter() - t_start)
    state.wait_for_everyone()
    return checkpoint


def _export(generator: str, out: Path, checkpoint: Path, plan: dict, seconds: float) -> None:
    """``OUT/checkpoint``: assembled (bus) or copied (pig), with the plan in synthaug.json and the card."""
    from .pipelines.base import CARD_NAME, GENERATOR_INFO, write_generator_info

    tmp = out / f".{CHECKPOINT}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    if generator == "bus":
        from .pipelines.bus import assemble_bus

        f = {p: out / p / "final" for p in PARTS["bus"]}
        assemble_bus(f["vae"], f["ldm"], f["controlnet"], f["scmg"], tmp)
    else:
        shutil.copytree(out / "pig" / "final", tmp)
    info = json.loads((tmp / GENERATOR_INFO).read_text(encoding="utf-8"))
    steps = {p: _done_steps(out / p / "final") for p in plan["parts"]}
    info["fit"] = {"profile": plan["profile"], "minutes": plan["minutes"], "classes": plan["classes"],
                   "steps": steps, "scale": plan["scale"], "last_run_minutes": round(seconds / 60, 1)}
    write_generator_info(tmp, info)
    short = [p for p, s in steps.items() if s < plan["parts"][p]["steps"]]
    lines = ["", "## synthaug fit", "",
             f"- one command: `synthaug fit {plan['raw']} --generator {generator} --profile {plan['profile']}"
             + (f" --minutes {plan['minutes']:g}" if plan["minutes"] is not None else "") + "`",
             f"- classes: {plan['classes']}"
             + ("; the one class is named `benign` in the checkpoint (the pipelines know two type names): "
                "ask for no type, or `benign`" if plan["classes"].startswith("single") and generator == "bus" else ""),
             f"- steps per part (recipe steps x {plan['scale']}): "
             + ", ".join(f"{p} {s}/{plan['parts'][p]['recipe_steps']}" for p, s in steps.items()),
             "- seconds per step, timed before training / as trained: "
             + ", ".join(f"{p} {c['sec_per_step']:.3g} / {plan['parts'][p].get('measured_sec_per_step') or 0:.3g}"
                         for p, c in plan["calibration"].items()),
             f"- wall time of the last `fit` run: {seconds / 60:.1f} min"]
    if short:
        lines.append(f"- stopped early by the time limit: {', '.join(short)} (rerun the command to finish)")
    card = tmp / CARD_NAME
    card.write_text((card.read_text(encoding="utf-8") if card.is_file() else f"# {checkpoint.name}\n")
                    + "\n".join(lines) + "\n", encoding="utf-8")
    if checkpoint.exists():
        shutil.rmtree(checkpoint)
    tmp.rename(checkpoint)
