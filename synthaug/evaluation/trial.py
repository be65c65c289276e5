"""``synthaug trial RAW``: does a generator's synthetic data help a segmenter on this folder?

The benchmark's engine on a user's own nnU-Net raw folder: a held-out test
part (``holdout``), the same conditions, banks and resumable runs
(``runs``), the same paired statistics (``stats``), one progress bar for the
whole trial, and a verdict with the settings to use (``trial_report``).

Everything lives in the output folder (never inside RAW, which is only read):
the bank under ``banks/``, one JSON per finished run under ``runs/``
(``<name>.state.pt`` while a run is in progress, so a killed run resumes from
its last epoch), ``plan.json`` (the epochs and seeds a budget chose, reused by
a rerun of the same command, so its runs are found again), ``trial.log``
(per-epoch lines), and the results ``trial.json``, ``trial.md``, ``trial.png``.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..data.datasets import PairDataset
from ..errors import SynthaugError
from ..paths import DEFAULT_GENERATOR
from ..precision import use_bf16
from .banks import bank_need, ensure_bank, generator_record
from .budget import batches_per_epoch, fit_budget, measure
from .conditions import parse_conditions
from .holdout import read_test_part, split_key, trial_parts
from .runs import matrix_jobs, run_job, run_path, write_json_atomic
from .splits import class_shares
from .trial_report import check_folders, write_trial

PROFILE = "trial"  # run folders: OUT/runs/seg-trial-<settings hash>/
DEFAULT_EPOCHS, MIN_BATCHES, LR, CHUNK = 30, 10, 1e-3, 16  # chunks of 16 pairs: small folders make few spare


@dataclass(frozen=True)
class TrialRequest:
    """What the user asked for; a rerun with the same request reuses the plan and every finished run."""

    raw: str
    generator: str = DEFAULT_GENERATOR
    conditions: str | None = None  # comma-separated names; default: default_conditions(<gen>)
    seeds: tuple[int, ...] = (0, 1, 2)
    minutes: float | None = None
    external: str | None = None
    size: int = 128
    epochs: int = DEFAULT_EPOCHS
    model: str | None = None  # default: unet-lite0 when its weights are installed, else unet
    batch_size: int = 16


def load_cases(raw: Path, size: int) -> PairDataset:
    """The real training cases of RAW, or one clear refusal when it cannot be read."""
    try:
        return PairDataset.from_raw(raw, size=size)
    except SynthaugError:
        raise
    except (OSError, ValueError, KeyError) as e:
        raise SynthaugError(f"{raw}: cannot read it as an nnU-Net raw folder ({type(e).__name__}: {e})") from None


def check_lesions(ds: PairDataset, where: Path) -> None:
    if not any(r.mask.any() for r in ds.records):
        raise SynthaugError(f"{where}: every lesion mask is empty, so there is nothing to segment; a trial needs "
                            "cases with lesions in labelsTr")


def load_external(raw: Path, size: int) -> PairDataset:
    """All cases of a second raw folder (training and imagesTs ones), as an external test."""
    records = []
    try:
        records += load_cases(raw, size).records
    except SynthaugError as e:
        if "at least one case" not in str(e):  # a test-only folder (e.g. converted STU) has no training case
            raise
    test = read_test_part(raw, size)
    records += test.records if test is not None else []
    if not records:
        raise SynthaugError(f"--external {raw}: no case with a label in imagesTr/labelsTr or imagesTs/labelsTs")
    ds = PairDataset(records, size=size)
    check_lesions(ds, raw)
    return ds


def default_model() -> str:
    from ..pretrained import lite_installed

    return "unet-lite0" if lite_installed(0) else "unet"


def default_conditions(gen: str) -> list[str]:
    """What a trial compares unless told otherwise. ``<gen> 100% + ordinary`` asks whether pairs add to
    ordinary augmentation, which is the strong baseline with a pretrained encoder (scarcity matrix, seed 0:
    +0.05 to +0.16 DSC over ``real`` on the internal test at 10-100% of BUSI train)."""
    return ["real", "ordinary", f"{gen} 25%", f"{gen} 100%", f"{gen} 100% + ordinary"]


def trial_conditions(req: TrialRequest, record: dict):
    gen = record["generator"]
    conds = parse_conditions(req.conditions or default_conditions(gen))
    wrong = sorted({c.generator for c in conds if c.synthetic and c.generator not in (None, gen)})
    if wrong:
        raise SynthaugError(f"conditions name the generator(s) {wrong} but --generator {req.generator} is a "
                            f"{gen!r} checkpoint: name them '{gen} N%'")
    if not any(c.name in ("real", "0%") for c in conds):
        raise SynthaugError("--conditions must include 'real': every verdict is a paired difference against it")
    return conds


def make_plan(req: TrialRequest, out: Path, task, parts: dict, conds, model: str, t0: float, say) -> dict:
    """The epochs and seeds of this request: read back from plan.json when the same request made one, else
    chosen (to fit ``--minutes`` from a measurement of this machine) and saved."""
    path, key = out / "plan.json", asdict(req)
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("request") == json.loads(json.dumps(key)):
            return saved["plan"]
        say("the request differs from the one plan.json was made for: planning anew (earlier runs stay in runs/)")
    train, bf16 = parts["sets"]["train"], use_bf16(True)
    n = len(train)
    batches = [batches_per_epoch(round(n * (1 + c.ratio)), req.batch_size, MIN_BATCHES) for c in conds]
    n_eval = sum(len(ds) for ds in parts["sets"].values()) - n
    cost = measure(task, model, train, parts["sets"]["val"], req.batch_size, bf16)
    seconds = None if req.minutes is None else req.minutes * 60 - (time.time() - t0)  # the bank took its share
    fit = fit_budget(seconds, cost, batches, list(req.seeds), req.epochs, n_eval)
    plan = {"epochs": fit["epochs"], "seeds": fit["seeds"], "cut": fit["cut"], "estimate_seconds": fit["estimate"],
            "measured": cost, "bf16": bf16}
    write_json_atomic(path, {"request": key, "plan": plan})
    return plan


def done_epochs(path: Path, epochs: int) -> int:
    """Epochs a job has behind it: all when its JSON is written, else those its saved state holds."""
    if path.is_file():
        return epochs
    state = path.with_suffix(".state.pt")
    if state.is_file():
        return int(torch.load(state, map_location="cpu", weights_only=False)["next_epoch"])
    return 0


def run_trial(req: TrialRequest, out: Path | None = None, say=print) -> Path:
    """Run (or resume) a trial; returns the path of trial.json. ``say`` takes the few lines a user reads."""
    from .tasks import SEGMENTATION as task

    t0 = time.time()
    raw = Path(req.raw)
    out = check_folders(raw, out, req.external)
    cases = load_cases(raw, req.size)
    check_lesions(cases, raw)
    parts = trial_parts(cases, read_test_part(raw, req.size))
    sets = parts["sets"]
    if req.external:
        sets["external"] = load_external(Path(req.external), req.size)
        parts["names"]["external"] = str(req.external)
    held_out = {r.case_id for r in sets["internal"].records}
    external = {r.case_id for r in sets["external"].records} if "external" in sets else None
    record = generator_record(req.generator, held_out=held_out, external=external)  # seen counts: decision_split
    conds = trial_conditions(req, record)
    model = req.model or default_model()
    out.mkdir(parents=True, exist_ok=True)
    say(f"trial of {raw}: {len(sets['train'])} train, {len(sets['val'])} validation, {len(sets['internal'])} test "
        f"cases" + (f", {len(sets['external'])} external" if "external" in sets else "") + f"; model {model}; "
        f"output {out}")
    labelled = "label" in record["conditions"] and min(sets["train"].labels) >= 0
    shares = class_shares(sets["train"], labelled)
    banks = {}
    for background in ("synthetic", "real"):
        if any(c.synthetic and c.background == background for c in conds):
            need = bank_need(len(sets["train"]), conds, shares, background)
            say(f"bank of {sum(need.values())} {record['generator']} pairs ({background} backgrounds), made once")
            banks[background] = ensure_bank(record, out, need, None, None, CHUNK, req.batch_size,
                                            backgrounds=sets["train"] if background == "real" else None)
    plan = make_plan(req, out, task, parts, conds, model, t0, say)
    for line in plan["cut"]:
        say(f"budget: {line}")
    settings = {"epochs": plan["epochs"], "size": req.size, "cases": None, "batch_size": req.batch_size, "lr": LR,
                "bf16": plan["bf16"], "select": "best-val", "patience": None, "min_batches": MIN_BATCHES,
                "split": split_key(sets)}
    mplan = {"models": [model], "conditions": conds, "seeds": plan["seeds"], "settings": settings}
    runs = train_all(task, mplan, sets, banks, shares, out, say)
    return write_trial(req, out, task, mplan, plan, parts, record, banks, shares, runs, model, time.time() - t0)


def train_all(task, plan: dict, sets: dict, banks: dict, shares: dict, out: Path, say) -> list[dict]:
    """Every run of the plan under one progress bar counted in optimiser steps (so its ETA weighs a 100%
    condition's epochs twice), per-epoch lines to trial.log; finished runs are read back."""
    s, n = plan["settings"], len(sets["train"])
    jobs = matrix_jobs(plan)

    def steps(cond) -> int:
        return batches_per_epoch(round(n * (1 + cond.ratio)), s["batch_size"], s["min_batches"])

    def path(job):
        model, seed, cond = job
        bank = banks.get(cond.background)
        return run_path(out, task, PROFILE, s, bank.key if bank and cond.synthetic else None, model, cond, seed)

    done = [done_epochs(path(j), s["epochs"]) for j in jobs]
    total = sum(s["epochs"] * steps(j[2]) for j in jobs)
    left = len([d for d in done if d < s["epochs"]])
    say(f"{len(jobs)} runs x {s['epochs']} epochs ({len(jobs) - left} done before); per-epoch lines in "
        f"{out / 'trial.log'}")
    runs = []
    with open(out / "trial.log", "a", encoding="utf-8") as log_file, \
            tqdm(total=total, initial=sum(d * steps(j[2]) for d, j in zip(done, jobs)), unit="step",
                 desc="trial", dynamic_ncols=True) as bar:
        def log(line: str) -> None:
            log_file.write(line + "\n")
            log_file.flush()

        for i, (job, before) in enumerate(zip(jobs, done), 1):
            model, seed, cond = job
            bar.set_postfix_str(f"run {i}/{len(jobs)}: {cond.name}, seed {seed}")
            run = run_job(task, job, plan, sets, banks, shares, out, PROFILE, tag=f"[{i}/{len(jobs)}]", log=log,
                          on_epoch=lambda b=steps(cond): bar.update(b))
            if run is None:
                say(f"run {i}/{len(jobs)} ({cond.name}, seed {seed}) is being trained by another process: skipped")
                continue
            bar.update(max(0, (s["epochs"] - max(before, run.get("epochs_run", 0))) * steps(cond)))
            runs.append(run)
    return runs
