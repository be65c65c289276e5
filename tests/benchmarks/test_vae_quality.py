"""benchmarks/vae_quality.py end to end on real STU and BUSI images with a tiny untrained VAE."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from synthaug.training.objectives.vae import small_vae

pytestmark = [pytest.mark.realdata]
REPO = Path(__file__).resolve().parents[2]


def test_vae_quality_writes_psnr_ssim_speed_and_figure(tmp_path, busi_root):
    small_vae(128, block_out_channels=[8, 8, 8], norm_num_groups=4).save_pretrained(str(tmp_path / "vae"))
    out = tmp_path / "results"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "vae_quality.py"), "--vae", str(tmp_path / "vae"),
                    "--name", "vae_test", "--results-dir", str(out)], check=True, cwd=REPO)
    res = json.loads((out / "vae_test.json").read_text(encoding="utf-8"))
    stu = res["reconstruction"]["STU (external, unseen)"]
    assert stu["n"] == 42 and res["reconstruction"]["BUSI val part (seen in VAE training)"]["n"] > 90
    assert 0 < stu["psnr"] < 25 and -1 <= stu["ssim"] < 0.9  # an untrained VAE reconstructs badly
    assert res["speed"]["latent_shape"] == [4, 32, 32]
    assert (out / "vae_test.png").stat().st_size > 0 and "| STU" in (out / "vae_test.md").read_text(encoding="utf-8")
