"""Run nnU-Net's own command-line tools the way a user does, on a small CPU.

Shared by the nnU-Net tests and ``benchmarks/nnunet_route.py``: an
environment with nnU-Net's three folders, this folder's trainers and the
few-process settings; plan and preprocess; train one fold; and read what a
finished fold says. (nnU-Net imports every module here when it looks for a
trainer by name, so this module stays import-cheap: standard library only.)
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
TRAINER_DIR = Path(__file__).resolve().parent


def nnunet_env(root: Path, **extra) -> dict:
    """nnU-Net folders under ``root``, this folder's trainers, and the small-CPU settings."""
    root = Path(root)
    env = dict(os.environ, nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "pre"),
               nnUNet_results=str(root / "results"), nnUNet_extTrainer=str(TRAINER_DIR),
               nnUNet_n_proc_DA="0", nnUNet_def_n_proc="1", OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(cmd, env: dict, timeout: float = 3600) -> str:
    """Run a command; on failure raise with the end of its output (nnU-Net's errors are at the end)."""
    res = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return res.stdout


def plan_and_preprocess(env: dict, dataset_id: int) -> None:
    # the planner calls torch.set_num_threads(nnUNet_n_proc_DA): 0 (no DA workers) would crash it
    run([BIN / "nnUNetv2_plan_and_preprocess", "-d", dataset_id, "-c", "2d", "-np", "1", "-npfp", "1", "--no_pbar"],
        {**env, "nnUNet_n_proc_DA": "1"})


def train(env: dict, dataset_id: int, trainer: str, fold: int = 0) -> Path:
    """Run nnUNetv2_train for one fold on the CPU; return the fold folder after checking it finished."""
    run([BIN / "nnUNetv2_train", dataset_id, "2d", fold, "-tr", trainer, "-device", "cpu"], env)
    results = Path(env["nnUNet_results"])
    folder = next(results.glob(f"Dataset{dataset_id:03d}_*")) / f"{trainer}__nnUNetPlans__2d" / f"fold_{fold}"
    logs = list(folder.glob("training_log_*.txt"))
    if not (folder / "checkpoint_final.pth").is_file() or len(logs) != 1 or "Training done." not in logs[0].read_text(encoding="utf-8"):
        raise RuntimeError(f"nnUNetv2_train {dataset_id} {trainer} fold {fold} did not finish: see {folder}")
    return folder


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative path: proves a folder is unchanged."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def validated_cases(fold: Path) -> set[str]:
    """Cases nnU-Net's final validation predicted (and scored)."""
    return {p.name[: -len(".png")] for p in (Path(fold) / "validation").glob("*.png")}


def validation_dice(fold: Path) -> float:
    """Mean foreground Dice of nnU-Net's final validation (its ``summary.json``)."""
    summary = json.loads((Path(fold) / "validation" / "summary.json").read_text(encoding="utf-8"))
    return float(summary["foreground_mean"]["Dice"])
