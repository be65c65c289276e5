"""``synthaug trial`` end to end on a 24-case raw folder of real BUSI cases (32 px) with a tiny PIG checkpoint:
it runs as a user runs it, is killed mid-run and resumes from the killed run's last epoch, writes trial.json,
trial.md and trial.png, does not train again when rerun, and refuses a folder without lesions in one line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from synthaug.cli import main
from synthaug.io.public_sets import iter_busi, write_raw_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from test_benchmarks_quick import tiny_pig  # noqa: E402  (the tiny PIG checkpoint the benchmark tests build)

pytestmark = [pytest.mark.realdata, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
EPOCHS = 4


def busi_raw(parent: Path, busi_root: Path, n: int = 24, empty_masks: bool = False) -> Path:
    """A raw folder of the first ``n`` BUSI train cases, two benign per malignant one, 32 px."""
    rows = list(iter_busi(busi_root, split="train"))
    ben = [r for r in rows if r["label"] == "benign"][: 2 * n // 3]
    rows = ben + [r for r in rows if r["label"] == "malignant"][: n - len(ben)]
    if empty_masks:
        rows = [{**r, "mask": np.zeros_like(r["mask"])} for r in rows]
    return write_raw_dataset(rows, parent, 991, "TrialTiny", source="BUSI subset", size=32)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, busi_root):
    tmp = tmp_path_factory.mktemp("trial")
    return busi_raw(tmp / "raw", busi_root), tiny_pig(tmp / "pig", class_conditional=True), tmp / "out"


def args(raw, pig, out):
    return [str(raw), "--generator", str(pig), "--conditions", "real,pig 50%", "--seeds", "0", "--epochs",
            str(EPOCHS), "--size", "32", "--model", "unet", "--out", str(out)]


def test_trial_runs_resumes_after_a_kill_and_writes_its_three_files(setup):
    raw, pig, out = setup
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "synthaug.cli", "trial", *args(raw, pig, out)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list(out.glob("runs/*/*/*.state.pt")):
        time.sleep(0.02)
    assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.kill()  # mid-run: a state file holds at least one finished epoch
    proc.wait()
    state = next(out.glob("runs/*/*/*.state.pt"))
    assert not (out / "trial.json").exists() and not state.with_suffix(".json").exists()

    res = CliRunner().invoke(main, ["trial", *args(raw, pig, out)])
    assert res.exit_code == 0, res.output
    log = (out / "trial.log").read_text()
    assert "resuming from its saved training state" in log
    report = json.loads((out / "trial.json").read_text())
    assert [r["condition"] for r in report["runs"]] == ["real", "pig 50%"]
    assert all(r["epochs_run"] == EPOCHS and len(r["curve"]) == EPOCHS for r in report["runs"])
    assert not list(out.glob("runs/*/*/*.state.pt"))  # dropped once the run's JSON is written
    cases = report["cases"]
    assert not set(cases["internal"]) & (set(cases["train"]) | set(cases["val"]))
    assert report["generator"]["held_out_seen"] is None  # the tiny PIG records no training case ids
    md = (out / "trial.md").read_text()
    assert "| pig 50% |" in md and ("Recommendation: ratio 0.5" in md or "Recommendation: no synthetic data" in md)
    assert (out / "trial.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["recommendation"]["condition"] == "pig 50%"

    before = log.count("epoch ")
    again = CliRunner().invoke(main, ["trial", *args(raw, pig, out)])  # the same command: nothing to train
    assert again.exit_code == 0, again.output
    assert (out / "trial.log").read_text().count("epoch ") == before
    assert json.loads((out / "trial.json").read_text())["summary"] == report["summary"]


def test_a_folder_without_lesions_is_refused_in_one_line(tmp_path, busi_root):
    raw = busi_raw(tmp_path, busi_root, empty_masks=True)
    res = CliRunner().invoke(main, ["trial", str(raw), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and "every lesion mask is empty" in lines[0]
    assert not (tmp_path / "out").exists()


def test_an_unreadable_folder_is_refused_in_one_line(tmp_path):
    res = CliRunner().invoke(main, ["trial", str(tmp_path / "missing")])
    assert res.exit_code == 2 and res.output.strip().startswith("Error:") and len(res.output.strip().splitlines()) == 1
