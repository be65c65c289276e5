"""DBT-style input: 3D volumes -> lesion slices (CLI) -> a PIG training run on them."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
from click.testing import CliRunner

from synthaug import create_generator
from synthaug.cli import main
from synthaug.training.data import training_dataset
from synthaug.training.loop import TrainConfig, train
from synthaug.training.objectives import create_objective


def _volume(path, mask_path):
    rng = np.random.default_rng(0)
    vol = rng.normal(100, 20, (40, 40, 12)).astype(np.float32)  # NIfTI order: x, y, z
    mask = np.zeros(vol.shape, np.uint8)
    mask[12:24, 10:20, 4:8] = 1  # lesion on slices z = 4..7 only
    vol[mask > 0] += 80
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(path))
    nib.save(nib.Nifti1Image(mask, np.eye(4)), str(mask_path))


def test_volumes_convert_then_pig_trains(tmp_path):
    img, msk = tmp_path / "case.nii.gz", tmp_path / "case_mask.nii.gz"
    _volume(img, msk)
    res = CliRunner().invoke(main, ["convert", "volumes", "-", str(tmp_path / "raw"), "--dataset-id", "7",
                                    "--pair", str(img), str(msk), "--size", "32"])
    assert res.exit_code == 0, res.output
    raw = tmp_path / "raw" / "Dataset007_DBT"
    assert json.loads((raw / "dataset.json").read_text(encoding="utf-8"))["numTraining"] == 4
    ds = training_dataset(raw, size=32)
    assert len(ds) == 4 and all(ds[i]["mask"].sum() > 0 for i in range(4))
    model = dict(resolution=16, output_size=32, class_conditional=False, default_steps=2,
                 unet=dict(block_out_channels=[8, 16], attention_levels=[1], norm_num_groups=4))
    final = train(create_objective("pig", model), ds, TrainConfig(steps=2, batch_size=2, save_every=100), tmp_path / "run")
    gen = create_generator(final)
    assert gen.conditions == frozenset() and gen.sample(1)[0].mask.shape == (32, 32)
