"""benchmarks/seg.py and benchmarks/cls.py end to end (quick profile) on the real BUSI/STU data,
with tiny randomly initialised PIG checkpoints, so the benchmark plumbing cannot rot unnoticed.

The scripts run as subprocesses, as a user runs them: command line, data loading,
bank generation, runs, resume, JSON, Markdown and the ratio-curve PNG.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from synthaug.models.unets import pixel_unet
from synthaug.pipelines.pig import PIGPipeline, save_pig
from synthaug.pipelines.schedulers import training_scheduler

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TINY = dict(block_out_channels=(8, 16), attention_levels=(1,), norm_num_groups=4)
QUICK_CONDITIONS = ["0%", "50%"]


def tiny_pig(path: Path, class_conditional: bool) -> Path:
    torch.manual_seed(0)
    n = 3 if class_conditional else None  # benign, malignant, null
    unet = lambda: pixel_unet(2, 1, 16, num_class_embeds=n, **TINY)  # noqa: E731
    pipe = PIGPipeline(unet(), unet(), training_scheduler())
    return save_pig(pipe, path, {"output_size": 32, "default_steps": 4})


@pytest.fixture(scope="module")
def labelled_pig(tmp_path_factory) -> Path:
    return tiny_pig(tmp_path_factory.mktemp("pig_labelled"), class_conditional=True)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """One cache for both scripts, as in real use: cls.py reuses the bank seg.py generated."""
    return tmp_path_factory.mktemp("bench_work")


def run_script(script: str, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=600)


def quick(script: str, generator: Path, work: Path, results: Path) -> subprocess.CompletedProcess:
    res = run_script(script, "--profile", "quick", "--generator", generator, "--work", work, "--results-dir", results)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def check_report(results: Path, name: str, metrics: tuple[str, ...], splits: set[str]) -> dict:
    """The JSON holds the quick conditions with finite scores in [0, 1]; the Markdown and PNG exist."""
    payload = json.loads((results / f"{name}.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in payload["conditions"]] == QUICK_CONDITIONS
    assert payload["runs_done"] == payload["runs_planned"] == len(QUICK_CONDITIONS)
    (model,) = payload["models"]
    row = payload["summary"]["cells"][model]
    assert set(row) == set(QUICK_CONDITIONS)
    for cond in QUICK_CONDITIONS:
        assert set(row[cond]) == splits | {"time"}
        for split in splits:
            for k in metrics:
                v = row[cond][split][k]["mean"]
                assert math.isfinite(v) and 0 <= v <= 1, (cond, split, k, v)
    synthetic = next(r for r in payload["runs"] if r["condition"] == "50%")
    assert synthetic["n_synthetic"] == round(0.5 * synthetic["n_real"]) > 0
    assert payload["summary"]["selection"][model]["synthetic"] == "50%"
    assert "as in the BUS paper" in (results / f"{name}.md").read_text(encoding="utf-8")
    assert (results / payload["figure"]).stat().st_size > 0
    return payload


def test_seg_quick_profile_end_to_end_and_resumes(busi_root, stu_root, labelled_pig, work, tmp_path):
    quick("seg.py", labelled_pig, work, tmp_path)
    name = f"seg_{labelled_pig.name}_quick"
    first = check_report(tmp_path, name, ("dsc",), {"val", "internal", "external"})
    assert first["generator"]["conditions"] == ["label"] and not first["generator"]["busi_train_only"]
    assert set(first["bank"]["pairs"]) == {"benign", "malignant"}  # drawn at the real class shares

    again = quick("seg.py", labelled_pig, work, tmp_path)  # every run is on disk: nothing is trained again
    assert "seg unet" not in again.stdout
    second = json.loads((tmp_path / f"{name}.json").read_text(encoding="utf-8"))
    assert second["summary"] == first["summary"] and second["bank_seconds"] == 0


def test_cls_quick_profile_end_to_end(busi_root, labelled_pig, work, tmp_path):
    quick("cls.py", labelled_pig, work, tmp_path)
    check_report(tmp_path, f"cls_{labelled_pig.name}_quick", ("auc", "f1"), {"val", "internal"})


def test_cls_refuses_a_generator_without_tumour_type(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))  # in process: the refusal comes before any data or model is loaded
    from benchmarks.cls import CLASSIFICATION
    from benchmarks.seg import main

    unlabelled = tiny_pig(tmp_path / "pig", class_conditional=False)
    with pytest.raises(SystemExit, match="not class-conditional.*never uses pseudo-labels"):
        main(CLASSIFICATION, ["--profile", "quick", "--generator", str(unlabelled), "--work", str(tmp_path / "w"),
                              "--results-dir", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists() and not (tmp_path / "w").exists()
