"""Bring your own data (issue 17), end to end on real cases: a plain image/mask folder layout ->
`synthaug convert folder` -> `synthaug fit` (tiny recipes, tiny budget) -> `synthaug expand` -> `synthaug revert`.

60 BUSI train cases at 64 px keep the bus run to about a minute on one core; the PIG run and the
single-class checks are a few seconds each.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from synthaug.cli import main
from synthaug.io.images import sha256_file
from synthaug.io.public_sets import iter_busi

pytestmark = pytest.mark.slow
N_CASES = 60


def _cli(*args) -> str:
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.stdout.strip().splitlines()[-1]  # stderr holds the progress bars


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def plain_layout(busi_root, tmp_path_factory) -> Path:
    """60 BUSI train cases (both types) as a user's folders: images/NAME.png, masks/NAME_mask.png, types.csv."""
    root = tmp_path_factory.mktemp("mydata")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rows = ["file,type"]
    cases = itertools.islice(iter_busi(busi_root, "train"), 0, None, 8)  # every 8th: benign and malignant
    for k, case in enumerate(itertools.islice(cases, N_CASES)):
        name = f"patient{k + 1}"
        Image.fromarray(case["image"]).save(root / "images" / f"{name}.png")
        Image.fromarray(case["mask"].astype(np.uint8) * 255).save(root / "masks" / f"{name}_mask.png")
        rows.append(f"{name}.png,{case['label']}")
    (root / "types.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.realdata
def test_convert_fit_expand_revert_single_class(plain_layout, tmp_path):
    raw = Path(_cli("convert", "folder", plain_layout / "images", plain_layout / "masks", tmp_path / "raw",
                    "--dataset-id", 42, "--name", "Mine", "--size", 64))
    assert len(list((raw / "imagesTr").iterdir())) == N_CASES

    run = tmp_path / "fit"
    args = ["fit", raw, "--generator", "bus", "--profile", "tiny", "--out", run, "--minutes", 3]
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    ckpt = Path(res.stdout.strip().splitlines()[-1])
    assert ckpt == run / "checkpoint"
    # the closing summary: steps against the recipes, the quality check, the preview (issue 33)
    summary = json.loads((run / "fit_summary.json").read_text())
    assert set(summary["steps"]) == {"scmg", "vae", "ldm", "controlnet"}
    assert {"mask_area", "touches_border", "darker_than_ring"} <= set(summary["quality"]["generated"])
    assert summary["quality"]["real"]["pairs"] == N_CASES and summary["quality"]["generated"]["pairs"] == 16
    assert (run / "fit_preview.png").is_file() and f"preview: {run / 'fit_preview.png'}" in res.stderr
    assert "synthaug: quality on 16 pairs" in res.stderr and "steps per part (trained/recipe)" in res.stderr
    assert ("warning: the budget was too small" in res.stderr) == (not summary["usable"])
    plan = json.loads((run / "fit_plan.json").read_text())
    assert list(plan["parts"]) == ["scmg", "vae", "ldm", "controlnet"]
    assert plan["classes"].startswith("single") and plan["n_cases"] == N_CASES
    assert all(c["sec_per_step"] > 0 for c in plan["calibration"].values())
    info = json.loads((ckpt / "synthaug.json").read_text())
    assert info["generator"] == "bus" and info["training_data"]["n_cases"] == N_CASES
    assert info["prior"]["malignant"]["n"] == 0 and info["prior"]["benign"]["n"] > 0  # one SCMG prior
    assert {p.split(" tumor")[0] for p in json.loads((run / "ldm" / "final" / "synthaug.json").read_text())
            ["prompt_counts"]} == {"benign"}  # one prompt family, the one the sampler writes
    assert "## synthaug fit" in (ckpt / "README.md").read_text()
    assert (ckpt / "model_index.json").is_file()  # diffusers save_pretrained layout
    from synthaug import Condition, create_generator
    from synthaug.errors import SynthaugError

    gen = create_generator(ckpt)
    assert gen.conditions == {"box"}  # one class: it takes no tumour type
    with pytest.raises(SynthaugError, match="cannot make a malignant one"):
        gen.sample(seeds=[1], conditions=[Condition("malignant")])
    res = CliRunner().invoke(main, ["sample", "--generator", str(ckpt), "-n", "2", "--out", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output  # --type mixed is ignored for a generator that takes no type

    # a rerun resumes: every part is finished, so nothing trains again and the plan is kept
    states = snapshot(run / "ldm" / "states")
    assert Path(_cli(*args)) == ckpt
    assert snapshot(run / "ldm" / "states") == states
    assert json.loads((run / "fit_plan.json").read_text()) == plan

    before = snapshot(raw)
    res = CliRunner().invoke(main, ["expand", str(raw), "--generator", str(ckpt), "--ratio", "0.25"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert len(list((raw / "imagesTr").iterdir())) == N_CASES + 15
    _cli("revert", raw)
    assert snapshot(raw) == before


@pytest.mark.realdata
def test_fit_pig_class_conditional_from_csv(plain_layout, tmp_path):
    raw = Path(_cli("convert", "folder", plain_layout / "images", plain_layout / "masks", tmp_path / "raw",
                    "--dataset-id", 43, "--labels", plain_layout / "types.csv", "--size", 64))
    labels = {c["label"] for c in json.loads((raw / "case_metadata.json").read_text())["cases"].values()}
    assert labels == {"benign", "malignant"}
    ckpt = Path(_cli("fit", raw, "--generator", "pig", "--profile", "tiny", "--out", tmp_path / "fit",
                     "--set", "train.steps=4"))
    info = json.loads((ckpt / "synthaug.json").read_text())
    assert info["class_conditional"] is True and info["fit"]["steps"] == {"pig": 4}


@pytest.mark.realdata
def test_fit_pig_unconditional_without_types(plain_layout, tmp_path):
    raw = Path(_cli("convert", "folder", plain_layout / "images", plain_layout / "masks", tmp_path / "raw",
                    "--dataset-id", 44, "--size", 64))
    ckpt = Path(_cli("fit", raw, "--generator", "pig", "--profile", "tiny", "--out", tmp_path / "fit",
                     "--set", "train.steps=4"))
    info = json.loads((ckpt / "synthaug.json").read_text())
    assert info["class_conditional"] is False and info["fit"]["classes"].startswith("single")
    res = CliRunner().invoke(main, [str(a) for a in ("fit", raw, "--generator", "pig", "--profile", "tiny", "--out",
                                                     tmp_path / "fit", "--set", "train.steps=5")])
    assert res.exit_code == 2 and "resume with the same --set values" in res.output


def test_fit_under_accelerate_two_cpu_processes(tmp_path):
    """Item 3 of the issue on this CPU: two processes over gloo (accelerate's --cpu starts one; --multi_gpu
    is its torchrun launcher, which falls back to gloo without a GPU). Synthetic cases: no real data needed."""
    import os
    import subprocess
    import sys

    from synthaug.io.public_sets import write_raw_dataset

    rng = np.random.default_rng(0)

    def case(k):
        mask = np.zeros((64, 64), bool)
        y, x = rng.integers(8, 40, 2)
        mask[y:y + 16, x:x + 20] = True
        image = (rng.integers(0, 80, (64, 64)) + 120 * mask).astype(np.uint8)
        return {"case_id": f"S_{k:04d}", "label": ("benign", "malignant")[k % 2], "image": image, "mask": mask}

    raw = write_raw_dataset((case(k) for k in range(16)), tmp_path, 45, "Syn", source="test")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "synthaug.cli", "fit", str(raw), "--generator", "bus", "--profile", "tiny",
           "--out", str(tmp_path / "fit"), "--set", "train.steps=3", "--set", "train.batch_size=4"]
    res = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=900,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().splitlines() == [str(tmp_path / "fit" / "checkpoint")]  # one line, from rank 0
    state = next((tmp_path / "fit" / "ldm" / "states").iterdir())
    assert sorted(p.name for p in state.glob("random_states_*")) == ["random_states_0.pkl", "random_states_1.pkl"]
    info = json.loads((tmp_path / "fit" / "checkpoint" / "synthaug.json").read_text())
    assert info["fit"]["steps"] == {"scmg": 3, "vae": 3, "ldm": 3, "controlnet": 3}


def test_fit_problems_name_what_a_short_fit_gets_wrong():
    """The verdict's rules on the numbers measured here: the shipped generator passes, the 56-minute fit of
    benchmarks/results/fit_bus90_quality.md (a tenth of the recipes, masks 2.2x too large) does not."""
    from synthaug.fit_report import problems

    real = {"mask_area": 0.10, "mask_area_same_types": 0.111, "touches_border": 0.1, "darker_than_ring": 0.95}
    shipped = {"generated": {"mask_area": 0.129, "touches_border": 0.15, "darker_than_ring": 0.9}, "real": real,
               "area_ratio": 1.16, "judge_dice": 0.93}
    assert problems({"ldm": 5000}, {"ldm": 5000}, shipped) == []
    short = {"generated": {"mask_area": 0.241, "touches_border": 0.5, "darker_than_ring": 0.3}, "real": real,
             "area_ratio": 2.17, "judge_dice": 0.38}
    found = problems({"ldm": 416, "vae": 250}, {"ldm": 5000, "vae": 2500}, short)
    assert len(found) == 5
    assert found[0].startswith("parts trained under 50% of their recipe's steps (ldm 416/5000, vae 250/2500)")
    assert "masks cover 24% of the image against 11%" in found[1] and "touch the image border" in found[2]
    assert "darker than their surroundings" in found[3] and "Dice 0.38" in found[4]
