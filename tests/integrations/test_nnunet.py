"""nnU-Net v2 integration: tiny REAL nnU-Net trainings on CPU through both routes.

* expand route: ``synthaug expand`` -> ``nnUNetv2_plan_and_preprocess`` ->
  ``synthaug splits`` -> ``nnUNetv2_train -tr nnUNetTrainerTiny``;
* on-the-fly route: ``nnUNetv2_train -tr nnUNetTrainerSynthAugTiny`` with a
  ``synthaug sample`` folder as ``SYNTHAUG_SOURCE``, plus the trainer's data
  loaders built in this process with a generator checkpoint as the source.

Data: the first 20 BUSI train cases at 64 px, so planning and preprocessing
take seconds. The tiny test generator is registered only in this process
(tests/conftest.py), so the nnU-Net subprocesses get it as a pre-generated
folder, never by name. Trainings run 1 epoch x 2 iterations
(SYNTHAUG_NNUNET_EPOCHS / _ITERS defaults of the *Tiny trainers).
"""
from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from integrations.nnunet.commands import (file_hashes, nnunet_env, plan_and_preprocess, run, train,
                                         validated_cases)
from integrations.nnunet.nnUNetTrainerSynthAug import synthaug_settings
from integrations.nnunet.synthetic_cases import open_source
from synthaug.errors import SynthaugError
from synthaug.expand import expand, revert
from synthaug.io.public_sets import iter_busi, write_raw_dataset
from synthaug.paths import DEFAULT_GENERATOR
from synthaug.pipelines.base import PairGenerator
from synthaug.pipelines.registry import create_generator
from synthaug.sampling import sample_to_folder

N_CASES, SIZE = 20, 64
N_TRAIN = 16  # fold 0 of nnU-Net's 5-fold split over 20 real cases


# ----------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def busi_cases(busi_root) -> list[dict]:
    return list(itertools.islice(iter_busi(busi_root, "train"), N_CASES))


def write_subset(busi_cases, root: Path, dataset_id: int) -> Path:
    return write_raw_dataset(busi_cases, root / "raw", dataset_id, "BUSISub", source="BUSI", size=SIZE)


# ----------------------------------------------------------------------------- settings (no nnU-Net run)
def test_settings_defaults_and_bad_values(monkeypatch):
    for var in ("SYNTHAUG_RATIO", "SYNTHAUG_SOURCE", "SYNTHAUG_SEED"):
        monkeypatch.delenv(var, raising=False)
    assert synthaug_settings() == (0.25, DEFAULT_GENERATOR, 0)
    for bad in ("abc", "-0.5", "11", "nan"):
        monkeypatch.setenv("SYNTHAUG_RATIO", bad)
        with pytest.raises(ValueError, match="SYNTHAUG_RATIO"):
            synthaug_settings()


def test_descriptor_setting_is_parsed_or_refused_in_one_line(monkeypatch):
    from integrations.nnunet.nnUNetTrainerSynthAug import synthaug_descriptors

    monkeypatch.delenv("SYNTHAUG_DESCRIPTOR", raising=False)
    assert synthaug_descriptors() is None
    monkeypatch.setenv("SYNTHAUG_DESCRIPTOR", "echo=isoechoic:1,hypoechoic:3")
    assert synthaug_descriptors() == {"echo": {"isoechoic": 0.25, "hypoechoic": 0.75}}
    monkeypatch.setenv("SYNTHAUG_DESCRIPTOR", "echo=bright")
    with pytest.raises(ValueError, match="SYNTHAUG_DESCRIPTOR=.*unknown echo word"):
        synthaug_descriptors()


def test_source_is_a_bank_folder_or_a_generator(tiny_generator_dir, tmp_path):
    assert open_source(tmp_path) == tmp_path  # any other folder: SyntheticMix opens it as a PairBank
    assert isinstance(open_source(tiny_generator_dir), PairGenerator)
    with pytest.raises(SynthaugError, match="unknown generator"):
        open_source("no-such-generator")


# ----------------------------------------------------------------------------- expand route
@pytest.mark.realdata
@pytest.mark.slow
def test_expand_route_trains_with_synthetic_cases_in_train_lists_only(busi_cases, tiny_generator_dir, tmp_path):
    env = nnunet_env(tmp_path)
    raw = write_subset(busi_cases, tmp_path, 992)
    before = file_hashes(raw)
    report = expand(raw, 0.25, generator=str(tiny_generator_dir), seed=0)
    synthetic = {f"synth_{k:05d}" for k in range(5)}
    assert report["added"] == 5 and report["splits"] is None  # nothing preprocessed yet: `synthaug splits` below
    plan_and_preprocess(env, 992)
    run([sys.executable, "-m", "synthaug.cli", "splits", raw], env)

    splits = json.loads((tmp_path / "pre" / raw.name / "splits_final.json").read_text(encoding="utf-8"))
    assert len(splits) == 5
    for s in splits:
        assert synthetic <= set(s["train"]) and not synthetic & set(s["val"])
        assert len(s["val"]) == 4 and not set(s["train"]) & set(s["val"])
    fold = train(env, 992, "nnUNetTrainerTiny")
    log = next(fold.glob("training_log_*.txt")).read_text(encoding="utf-8")
    assert f"This split has {N_TRAIN + 5} training and 4 validation cases" in log
    assert validated_cases(fold) == set(splits[0]["val"])

    after = file_hashes(raw)
    assert {k: v for k, v in after.items() if k in before and k != "dataset.json"} == \
           {k: v for k, v in before.items() if k != "dataset.json"}  # real cases untouched
    revert(raw)
    assert file_hashes(raw) == before


# ----------------------------------------------------------------------------- on-the-fly route
@pytest.fixture(scope="module")
def preprocessed(busi_cases, tmp_path_factory) -> dict:
    """A planned and preprocessed 20-case raw folder (id 993): the env to train on it."""
    root = tmp_path_factory.mktemp("nnunet_on_the_fly")
    write_subset(busi_cases, root, 993)
    env = nnunet_env(root)
    plan_and_preprocess(env, 993)
    return env


@pytest.mark.realdata
@pytest.mark.slow
def test_trainer_mixes_a_sample_folder_into_training_only(preprocessed, tiny_generator_dir, tmp_path):
    bank = sample_to_folder(create_generator(tiny_generator_dir), 6, tmp_path / "bank", seed=1)
    raw = Path(preprocessed["nnUNet_raw"]) / "Dataset993_BUSISub"
    pre_cases = Path(preprocessed["nnUNet_preprocessed"]) / raw.name / "nnUNetPlans_2d"
    raw_before, pre_before = file_hashes(raw), file_hashes(pre_cases)
    env = {**preprocessed, "SYNTHAUG_SOURCE": str(bank), "SYNTHAUG_RATIO": "0.25"}
    fold = train(env, 993, "nnUNetTrainerSynthAugTiny")

    keys = json.loads((fold / "synthaug_train" / "loader_keys.json").read_text(encoding="utf-8"))
    synthetic = [k for k in keys["train"] if os.path.isabs(k)]
    assert len(synthetic) == round(0.25 * N_TRAIN) and len(keys["train"]) == N_TRAIN + len(synthetic)
    assert all(Path(k).parent == fold / "synthaug_train" / "preprocessed" for k in synthetic)
    assert all(Path(k + ".b2nd").is_file() and Path(k + "_seg.b2nd").is_file() for k in synthetic)
    splits = json.loads((pre_cases.parent / "splits_final.json").read_text(encoding="utf-8"))
    assert sorted(keys["val"]) == sorted(splits[0]["val"]) and len(keys["val"]) == 4
    assert not any("synthaug" in k for s in splits for k in s["train"] + s["val"])  # nnU-Net's own splits
    assert validated_cases(fold) == set(splits[0]["val"])

    record = json.loads((fold / "synthaug_train" / "synthaug_train.json").read_text(encoding="utf-8"))
    assert {c["pair"] for c in record["cases"].values()} <= {f"pair_{i:05d}" for i in range(6)}
    log = next(fold.glob("training_log_*.txt")).read_text(encoding="utf-8")
    assert f"synthaug: training loader draws from {N_TRAIN} real + 4 synthetic cases" in log
    assert file_hashes(raw) == raw_before and file_hashes(pre_cases) == pre_before


@pytest.mark.realdata
@pytest.mark.slow
def test_trainer_loaders_with_a_generator_source(preprocessed, tiny_generator_dir, tmp_path, monkeypatch):
    """The loaders of an in-process trainer: sampling share, validation keys, reuse on restart."""
    from nnunetv2.run.run_training import get_trainer_from_args

    for k, v in {**preprocessed, "nnUNet_results": str(tmp_path / "results"), "SYNTHAUG_RATIO": "0.5",
                 "SYNTHAUG_SOURCE": str(tiny_generator_dir)}.items():
        monkeypatch.setenv(k, v)
    trainer = get_trainer_from_args("993", "2d", 0, "nnUNetTrainerSynthAug", device=torch.device("cpu"))
    trainer.initialize()
    dl_train, dl_val = (a.data_loader for a in trainer.get_dataloaders())

    synthetic = [k for k in dl_train.indices if os.path.isabs(k)]
    assert len(synthetic) == round(0.5 * N_TRAIN) and len(dl_train.indices) == N_TRAIN + len(synthetic)
    assert len(dl_val.indices) == 4 and not any(os.path.isabs(k) or "synthaug" in k for k in dl_val.indices)
    np.random.seed(0)
    drawn = [k for _ in range(500) for k in dl_train.get_indices()]
    share = sum(os.path.isabs(k) for k in drawn) / len(drawn)
    assert abs(share - 0.5 / 1.5) < 0.05  # the ratio's share of draws, as with expand at that ratio

    record_file = Path(synthetic[0]).parents[1] / "synthaug_train.json"
    labels = {c["label"] for c in json.loads(record_file.read_text(encoding="utf-8"))["cases"].values()}
    assert labels <= {"benign", "malignant"}  # generator conditioned on the real train cases' tumour types
    stamp = record_file.stat().st_mtime_ns
    again, _ = trainer.get_tr_and_val_datasets()  # as a restart (--c) would: same settings reuse the cases
    assert sorted(again.identifiers) == sorted(dl_train.indices) and record_file.stat().st_mtime_ns == stamp
