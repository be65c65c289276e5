"""nnUNetTrainerSynthAug refuses a raw folder `synthaug expand` has filled (issue 13, item 10).

On an expanded folder the trainer would count the synthetic cases as real
ones (validation folds included) and add synthetic cases on top of them. The
guard runs first in ``get_tr_and_val_datasets``, the trainer's one hook, so
these tests call that method on a trainer object without building nnU-Net's
plans: cheap, and the same code path ``nnUNetv2_train`` takes.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

import integrations.nnunet.nnUNetTrainerSynthAug as trainer_mod
from integrations.nnunet.synthetic_cases import refuse_expanded_raw
from synthaug.errors import SynthaugError
from synthaug.expand import expand, revert
from synthaug.io.manifest import MANIFEST_NAME, part_name

from test_expand import make_raw


@pytest.fixture(autouse=True)
def _no_preprocessed(monkeypatch):
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)


def trainer_on(raw, monkeypatch) -> nnUNetTrainer:
    """A trainer whose dataset is ``raw`` as far as the hook is concerned (nnUNet_raw = its parent)."""
    monkeypatch.setattr(trainer_mod, "nnUNet_raw", str(raw.parent))
    t = trainer_mod.nnUNetTrainerSynthAug.__new__(trainer_mod.nnUNetTrainerSynthAug)
    t.plans_manager = SimpleNamespace(dataset_name=raw.name)
    t.print_to_log_file = lambda *a, **k: None
    return t


def test_trainer_refuses_an_expanded_raw_folder(tmp_path, tiny_generator_dir, monkeypatch):
    raw = make_raw(tmp_path)
    expand(raw, 0.5, generator=str(tiny_generator_dir))
    base_called = []
    monkeypatch.setattr(nnUNetTrainer, "get_tr_and_val_datasets", lambda self: base_called.append(1))
    with pytest.raises(SynthaugError) as e:
        trainer_on(raw, monkeypatch).get_tr_and_val_datasets()
    msg = str(e.value)
    assert MANIFEST_NAME in msg and "synthetic cases for real ones" in msg
    assert "plain `nnUNetv2_train`" in msg and f"synthaug revert {raw}" in msg
    assert not base_called  # refused before nnU-Net loads anything


def test_refused_whatever_the_ratio(tmp_path, tiny_generator_dir, monkeypatch):
    raw = make_raw(tmp_path)
    expand(raw, 0.5, generator=str(tiny_generator_dir))
    monkeypatch.setenv("SYNTHAUG_RATIO", "0")
    monkeypatch.setattr(nnUNetTrainer, "get_tr_and_val_datasets", lambda self: ("tr", "val"))
    with pytest.raises(SynthaugError, match="was expanded by `synthaug expand`"):
        trainer_on(raw, monkeypatch).get_tr_and_val_datasets()


def test_a_plain_or_reverted_folder_passes(tmp_path, tiny_generator_dir, monkeypatch):
    raw = make_raw(tmp_path)
    monkeypatch.setenv("SYNTHAUG_RATIO", "0")  # real cases only: the hook returns nnU-Net's datasets as they are
    monkeypatch.setattr(nnUNetTrainer, "get_tr_and_val_datasets", lambda self: ("tr", "val"))
    assert trainer_on(raw, monkeypatch).get_tr_and_val_datasets() == ("tr", "val")
    expand(raw, 0.5, generator=str(tiny_generator_dir))
    revert(raw)
    assert trainer_on(raw, monkeypatch).get_tr_and_val_datasets() == ("tr", "val")


def test_a_shard_part_counts_as_expanded(tmp_path, tiny_generator_dir):
    """An unfinished sharded expansion has only part manifests: its cases are synthetic too."""
    raw = make_raw(tmp_path)
    expand(raw, 1.0, generator=str(tiny_generator_dir), shard=(0, 2))
    assert (raw / part_name((0, 2))).is_file() and not (raw / MANIFEST_NAME).exists()
    with pytest.raises(SynthaugError, match=part_name((0, 2)).replace(".", r"\.")):
        refuse_expanded_raw(raw)

