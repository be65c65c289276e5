"""A training run killed mid-way resumes from its last finished epoch (``fit(state_path=...)``, the
``<run>.state.pt`` of ``run_matrix``) and ends exactly as the uninterrupted run: same weights, same
validation curve, same best epoch and test scores. Tiny models and datasets, CPU only (seconds)."""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from synthaug.evaluation.conditions import TrainCondition  # noqa: E402
from synthaug.evaluation.runs import Task, run_matrix, run_path  # noqa: E402
from integrations.smp_timm._loop import fit  # noqa: E402
from synthaug.data.datasets import PairDataset, Record  # noqa: E402
from synthaug.errors import SynthaugError  # noqa: E402


class Killed(Exception):
    """Stands for the session being killed."""


def mse(model, batch):
    return (model(batch["image"]) - batch["mask"]).pow(2).mean()


def records(n: int, seed: int = 0) -> list[Record]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:12, :12]
    return [Record(rng.integers(0, 256, (12, 12), dtype=np.uint8),
                   (yy - 3 - k % 6) ** 2 + (xx - 6) ** 2 <= 9, "benign", f"c{k}") for k in range(n)]


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ----------------------------------------------------------------------------- fit
def noisy(item: dict) -> dict:
    """An augmentation drawing from all three global RNGs (torch, numpy, python)."""
    scale = 1 + 0.1 * float(np.random.rand()) + 0.1 * random.random()
    return {**item, "image": (item["image"] * scale + 0.05 * torch.randn_like(item["image"])).clamp(0, 1)}


def train_fit(state_path=None, kill_at=None, losses=None):
    """Five epochs of a tiny conv net (with BatchNorm buffers) on augmented items; ``kill_at=k`` raises
    Killed in epoch k's hook, which runs before the epoch is saved: epoch k is lost like a kill mid-epoch."""
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.Conv2d(4, 1, 3, padding=1))

    def hook(epoch, loss):
        if epoch == kill_at:
            raise Killed
        losses.append((epoch, loss))
        return False

    return fit(model, PairDataset(records(6), transform=noisy), mse, epochs=5, batch_size=2, lr=0.01, bf16=True,
               seed=3, on_epoch_end=hook, state_path=state_path)


def test_fit_resumes_from_the_last_saved_epoch_with_identical_results(tmp_path):
    np.random.seed(0), random.seed(0)
    losses = []
    reference = train_fit(losses=losses)
    np.random.seed(0), random.seed(0)
    state, first, second = tmp_path / "run.state.pt", [], []
    with pytest.raises(Killed):
        train_fit(state, kill_at=2, losses=first)  # epochs 0 and 1 saved, epoch 2 lost
    assert torch.load(state, weights_only=False)["next_epoch"] == 2
    np.random.seed(99), random.seed(99), torch.manual_seed(99)  # a new session: other global RNG states
    resumed = train_fit(state, losses=second)
    assert [e for e, _ in second] == [2, 3, 4]  # only the epochs not saved are trained again
    assert first + second == losses  # the same losses, epoch by epoch, bit for bit
    assert same_weights(resumed, reference)
    assert not Path(f"{state}.tmp").exists()


# ----------------------------------------------------------------------------- run_matrix
def toy_task(trained: list, kill: dict) -> Task:
    """A toy Task whose validation score depends on the weights. ``kill``: {"validation": k} raises
    Killed at the k-th validation of the session (during training; epochs before it are saved),
    {"evaluation": True} at the first test evaluation (training done and saved); it counts the
    epochs the session trained in ``kill["trained"]``."""
    training = [False]

    def evaluate(model, ds, bf16):
        if training[0]:
            kill["trained"] = kill.get("trained", 0) + 1
            if kill["trained"] == kill.get("validation"):
                raise Killed
        elif kill.pop("evaluation", False):
            raise Killed
        batch = {k: torch.stack([ds[i][k] for i in range(len(ds))]) for k in ("image", "mask")}
        with torch.no_grad():
            err = float(mse(model, batch))
        return {"m": 1.0 / (1.0 + err) if training[0] else err}

    def train(model, ds, epochs, **kw):
        training[0] = True
        try:
            trained.append(fit(model, ds, mse, epochs, **kw))
        finally:
            training[0] = False
        return trained[-1]

    return Task("toy", "toy", ("m",), {"m": "M"}, lambda _: torch.nn.Conv2d(1, 1, 3, padding=1), train, evaluate, {})


def matrix(work: Path, kill: dict, trained: list) -> tuple[dict, Path]:
    data = {"train": PairDataset(records(6)), "val": PairDataset(records(3, 1)), "internal": PairDataset(records(3, 2))}
    plan = {"settings": {"epochs": 6, "batch_size": 2, "lr": 0.05, "bf16": False, "select": "best-val"},
            "models": ["toy"], "seeds": [0], "conditions": [TrainCondition.parse("ordinary")]}  # torch-RNG augmentation
    [run] = run_matrix(toy_task(trained, kill), plan, data, {}, {None: 1.0}, work, "toy", report_only=False)
    [path] = (work / "runs").rglob("*.json")
    return run, path


def timeless(run: dict) -> dict:
    """The run's JSON without its timings (the only thing a resumed run may change)."""
    out = {k: v for k, v in run.items() if k not in ("seconds", "train_seconds")}
    out["curve"] = [{k: v for k, v in p.items() if k != "seconds"} for p in run["curve"]]
    return out


@pytest.mark.parametrize("kill, retrained", [({"validation": 4}, 3),  # killed in epoch 4: 3 epochs saved
                                             ({"evaluation": True}, 0)])  # killed after training
def test_a_killed_run_resumes_to_the_same_json_and_weights_and_drops_its_state_file(tmp_path, kill, retrained):
    uninterrupted, whole = [], {}
    reference, ref_path = matrix(tmp_path / "a", whole, uninterrupted)
    assert whole["trained"] == 6 and [p.name for p in ref_path.parent.iterdir()] == [ref_path.name]

    work, trained = tmp_path / "b", []
    with pytest.raises(Killed):
        matrix(work, kill, trained)
    [state] = (work / "runs").rglob("*.state.pt")
    assert not list((work / "runs").rglob("*.json")) and state.name == ref_path.name.replace(".json", ".state.pt")
    saved = torch.load(state, weights_only=False)
    assert saved["next_epoch"] == 6 - retrained and len(saved["extra"]["curve"]) == 6 - retrained

    again = {}
    run, path = matrix(work, again, trained)
    assert again.get("trained", 0) == retrained  # resumed, not restarted
    assert timeless(run) == timeless(reference) and timeless(json.loads(path.read_text())) == timeless(reference)
    assert run["train_seconds"] >= saved["extra"]["seconds"]  # the earlier session's seconds are counted
    assert same_weights(trained[-1], uninterrupted[-1])  # the best epoch's weights, restored
    assert not state.exists() and [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_run_locked_by_another_process_is_skipped_then_trained_once_free(tmp_path):
    """Two processes on one matrix: the second skips the run the first holds (no second training, no
    file written), and trains it once the lock is free; the lock file goes with the finished run."""
    from filelock import FileLock

    data = {"train": PairDataset(records(6)), "val": PairDataset(records(3, 1))}
    plan = {"settings": {"epochs": 2, "batch_size": 2, "lr": 0.05, "bf16": False, "select": "best-val"},
            "models": ["toy"], "seeds": [0, 1], "conditions": [TrainCondition.parse("real")]}
    task = toy_task([], {})
    first = run_path(tmp_path, task, "toy", plan["settings"], None, "toy", plan["conditions"][0], 0)
    first.parent.mkdir(parents=True)
    held = FileLock(str(first.with_suffix(".lock")))  # what the other process holds while training seed 0
    held.acquire()
    try:
        runs = run_matrix(task, plan, data, {}, {None: 1.0}, tmp_path, "toy", report_only=False)
        assert [r["seed"] for r in runs] == [1] and not first.exists()
    finally:
        held.release()
    runs = run_matrix(task, plan, data, {}, {None: 1.0}, tmp_path, "toy", report_only=False)
    assert [r["seed"] for r in runs] == [0, 1] and first.is_file()
    assert sorted(p.suffix for p in first.parent.iterdir()) == [".json", ".json"]


def test_runs_recorded_in_a_results_json_seed_a_new_work_folder_and_are_not_trained_again(tmp_path):
    """A machine without the work folder continues a matrix from the committed results JSON: runs with
    this plan's settings and bank key are taken (and not retrained), others are left to train, and a
    run already in the work folder is never overwritten."""
    from types import SimpleNamespace

    from synthaug.evaluation.runs import import_runs

    data = {"train": PairDataset(records(6)), "val": PairDataset(records(3, 1))}
    real, bus = TrainCondition.parse("real"), TrainCondition.parse("bus 25%")
    plan = {"settings": {"epochs": 2, "batch_size": 2, "lr": 0.05, "bf16": False, "select": "best-val"},
            "models": ["toy"], "seeds": [0, 1], "conditions": [real]}
    trained = []
    task = toy_task(trained, {})
    done = run_matrix(task, plan, data, {}, {None: 1.0}, tmp_path / "old", "toy", report_only=False)
    other = {**done[0], "seed": 2, "settings": {**done[0]["settings"], "lr": 0.1}}  # another protocol
    stale_bank = {**done[0], "condition": "bus 25%", "bank": "bus-old"}  # a bank this plan does not have
    report = tmp_path / "results.json"
    report.write_text(json.dumps({"task": "toy", "profile": "toy", "runs": done + [other, stale_bank]}))

    plan["conditions"], plan["seeds"] = [real, bus], [0, 1, 2]
    banks = {"synthetic": SimpleNamespace(key="bus-new")}
    work = tmp_path / "new"
    mine = run_path(work, task, "toy", plan["settings"], None, "toy", real, 1)
    write = {**done[1], "train_seconds": -1.0}  # a run already in the new work folder
    mine.parent.mkdir(parents=True)
    mine.write_text(json.dumps(write))
    told = []
    assert import_runs(report, task, plan, banks, work, "toy", log=told.append) == 1  # seed 0 only
    assert len(told) == 1 and "lr recorded 0.1, here 0.05 (1 runs)" in told[0]  # why the other run stayed out
    assert json.loads(mine.read_text())["train_seconds"] == -1.0
    assert not run_path(work, task, "toy", plan["settings"], "bus-new", "toy", bus, 0).exists()
    n_trained = len(trained)
    plan["conditions"], plan["seeds"] = [real], [0, 1]
    runs = run_matrix(task, plan, data, {}, {None: 1.0}, work, "toy", report_only=False)
    assert len(trained) == n_trained and runs[0] == done[0]  # taken, not trained again
    with pytest.raises(SynthaugError, match="not toy / other"):
        import_runs(report, task, plan, banks, work, "other")



def test_finished_runs_of_an_unfinished_seed_survive_a_new_machine_through_the_pending_file(tmp_path, monkeypatch):
    """``benchmarks/keep_runs.py``: runs no committed report holds go to the pending file (those a report
    holds do not), and a new work folder imports them from it like a report: nothing trains again."""
    import benchmarks.keep_runs as keep
    from synthaug.evaluation.runs import import_runs

    data = {"train": PairDataset(records(6)), "val": PairDataset(records(3, 1))}
    real = TrainCondition.parse("real")
    plan = {"settings": {"epochs": 2, "batch_size": 2, "lr": 0.05, "bf16": False, "select": "best-val"},
            "models": ["toy"], "seeds": [0, 1, 2], "conditions": [real]}
    trained = []
    task = toy_task(trained, {})
    old = tmp_path / "old"
    done = run_matrix(task, plan, data, {}, {None: 1.0}, old, "toy", report_only=False)
    import subprocess

    results = tmp_path / "results"
    (results / "sub").mkdir(parents=True)
    (results / "sub" / "report.json").write_text(json.dumps({"runs": [done[0]]}))  # seed 0 reached a report
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run(git[:5] + ["init", "-q", str(tmp_path)], check=True)
    subprocess.run(git + ["add", "results"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "report"], check=True)
    (results / "sub" / "report.json").write_text(json.dumps({"runs": done}))  # uncommitted: does not count
    monkeypatch.setattr(keep, "RESULTS", results)
    monkeypatch.setattr(keep, "PENDING", results / "pending")
    pending = keep.main(["--work", str(old), "--name", "kept", "--task", "toy", "--profile", "toy"])
    assert pending == results / "pending" / "kept.json"
    assert [r["seed"] for r in json.loads(pending.read_text())["runs"]] == [1, 2]
    subprocess.run(git + ["add", "results/pending"], check=True)  # the pending file committed beside the report
    subprocess.run(git + ["commit", "-q", "-m", "pending"], check=True)
    assert keep.main(["--work", str(old), "--name", "kept", "--task", "toy", "--profile", "toy"]) == pending
    assert [r["seed"] for r in json.loads(pending.read_text())["runs"]] == [1, 2]  # its own runs not counted

    new = tmp_path / "new"
    assert import_runs(pending, task, plan, {}, new, "toy") == 2
    n_trained = len(trained)
    runs = run_matrix(task, plan, data, {}, {None: 1.0}, new, "toy", report_only=False)
    assert len(trained) == n_trained + 1 and runs[1:] == done[1:]  # seed 0 trains again, 1 and 2 do not
    with pytest.raises(SystemExit, match="not a benchmark work folder"):
        keep.main(["--work", str(tmp_path / "nothing"), "--name", "x"])
