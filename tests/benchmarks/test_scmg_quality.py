"""benchmarks/scmg_quality.py end to end on the real BUSI masks with a tiny untrained SCMG checkpoint."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from synthaug.models.scmg import SCMGGenerator
from synthaug.pipelines.scmg import SCMGPipeline, save_scmg

pytestmark = [pytest.mark.realdata]
REPO = Path(__file__).resolve().parents[2]


def tiny_scmg(path: Path) -> Path:
    torch.manual_seed(0)
    G = SCMGGenerator(latent_dim=8, class_embed_dim=4, block_out_channels=(8, 8), base_size=8, spade_hidden=4)
    prior = {"benign": {"n": 3, "boxes": [[0.1, 0.1, 0.5, 0.5]]}, "malignant": {"n": 1, "boxes": [[0.2, 0.3, 0.9, 0.8]]}}
    return save_scmg(SCMGPipeline(mask_generator=G), path, {"output_size": 32, "prior": prior, "steps": 0})


def test_scmg_quality_writes_table_plot_and_preview(tmp_path, busi_root):
    ckpt = tiny_scmg(tmp_path / "scmg")
    out = tmp_path / "results"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "scmg_quality.py"), "--checkpoint", f"tiny={ckpt}",
                    "-n", "6", "--size", "128", "--preview", str(tmp_path / "preview.png"), "--results-dir", str(out),
                    "--name", "scmg_test"], check=True, cwd=REPO)
    res = json.loads((out / "scmg_test.json").read_text(encoding="utf-8"))
    real, gen = res["real"], res["generated"]["tiny"]
    assert real["malignant"]["curvature"]["mean"] > real["benign"]["curvature"]["mean"]
    assert real["benign"]["curvature"]["n"] > 300  # every BUSI train benign mask with a boundary
    assert 0 <= gen["benign"]["box_iou"]["median"] <= 1 and "box_iou" not in real["benign"]
    assert (out / "scmg_test.png").stat().st_size > 0 and (tmp_path / "preview.png").stat().st_size > 0
    assert "| tiny |" in (out / "scmg_test.md").read_text(encoding="utf-8")
