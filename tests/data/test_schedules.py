"""SyntheticMix schedules (issue 31): constant, decay and pretrain at a constant number of items an epoch;
large banks drawn afresh each epoch; the same rule in nnU-Net's SYNTHAUG_SCHEDULE."""
from __future__ import annotations

import numpy as np
import pytest

from synthaug.data.datasets import PairDataset
from synthaug.errors import SynthaugError
from synthaug.io.images import write_png
from synthaug.mix import SyntheticMix, scheduled_share


@pytest.fixture()
def real():
    return PairDataset([(np.zeros((8, 8), np.uint8), np.zeros((8, 8), bool), "benign", f"r{i}") for i in range(10)])


@pytest.fixture()
def bank(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for k in range(40):
        write_png(tmp_path / "images" / f"s{k:02d}.png", np.full((8, 8), k, np.uint8))
        write_png(tmp_path / "masks" / f"s{k:02d}.png", np.zeros((8, 8), np.uint8))
    return tmp_path


def epoch_items(mix, epoch):
    mix.set_epoch(epoch)
    return [mix[i] for i in range(len(mix))]


def synthetic_share(items):
    return float(np.mean([it["synthetic"] for it in items]))


def test_constant_schedule_is_the_unscheduled_mix(real, bank):
    plain, constant = SyntheticMix(real, bank, ratio=1.0, seed=3), SyntheticMix(real, bank, 1.0, 3, schedule="constant")
    for e in range(3):
        assert [it["case_id"] for it in epoch_items(plain, e)] == [it["case_id"] for it in epoch_items(constant, e)]


def test_decay_falls_to_no_synthetic_item_at_the_last_epoch_with_constant_length(real, bank):
    mix = SyntheticMix(real, bank, ratio=1.0, seed=0, schedule="decay", epochs=5)
    shares = [synthetic_share(epoch_items(mix, e)) for e in range(5)]
    assert shares[0] == pytest.approx(0.5) and shares[-1] == 0.0
    assert all(a >= b for a, b in zip(shares, shares[1:])) and len(mix) == 20
    last = epoch_items(mix, 4)
    assert {it["case_id"] for it in last} == {f"r{i}" for i in range(10)}  # every real case, twice


def test_pretrain_shows_only_synthetic_pairs_then_only_real(real, bank):
    mix = SyntheticMix(real, bank, ratio=1.0, seed=0, schedule="pretrain", epochs=4)
    first, late = epoch_items(mix, 0), epoch_items(mix, 2)
    assert synthetic_share(first) == 1.0 and synthetic_share(late) == 0.0
    assert len({it["case_id"] for it in first}) == 20  # distinct pairs from the 40-pair bank, not 10 shown twice


def test_a_large_bank_is_drawn_afresh_each_epoch(real, bank):
    mix = SyntheticMix(real, bank, ratio=0.5, seed=0)
    seen = set()
    for e in range(8):
        seen |= {it["case_id"] for it in epoch_items(mix, e) if it["synthetic"]}
    assert len(seen) > 20  # 5 slots an epoch, far more distinct pairs over 8 epochs


@pytest.mark.parametrize("kwargs, message", [({"schedule": "warmup"}, "schedule must be"),
                                             ({"schedule": "decay"}, "needs epochs"),
                                             ({"schedule": "pretrain", "epochs": 4, "pretrain_fraction": 1.0},
                                              "pretrain_fraction")])
def test_bad_schedules_are_refused(real, bank, kwargs, message):
    with pytest.raises(SynthaugError, match=message):
        SyntheticMix(real, bank, ratio=1.0, **kwargs)


def test_scheduled_share_rule():
    assert scheduled_share("constant", 7, 10, 0.3) == 0.3
    assert scheduled_share("decay", 0, 11, 0.5) == 0.5 and scheduled_share("decay", 10, 11, 0.5) == 0.0
    assert scheduled_share("decay", 5, 11, 0.5) == pytest.approx(0.25)
    assert [scheduled_share("pretrain", e, 4, 0.5) for e in range(4)] == [1.0, 1.0, 0.0, 0.0]


def test_nnunet_schedule_sets_the_loader_probabilities(monkeypatch):
    from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter

    import integrations.nnunet.nnUNetTrainerSynthAug as mod

    class Loader:
        sampling_probabilities = None

    trainer = mod.nnUNetTrainerSynthAug.__new__(mod.nnUNetTrainerSynthAug)
    trainer.dataloader_train, trainer.num_epochs = SingleThreadedAugmenter(Loader(), None), 10
    trainer._synthaug_counts, logged = (6, 3), []
    trainer.print_to_log_file = logged.append
    monkeypatch.setenv("SYNTHAUG_SCHEDULE", "pretrain")
    for epoch, synthetic in ((0, 1.0), (4, 1.0), (5, 0.0)):
        trainer.current_epoch = epoch
        trainer._apply_schedule()
        p = trainer.dataloader_train.data_loader.sampling_probabilities
        assert p.sum() == pytest.approx(1) and p[6:].sum() == pytest.approx(synthetic)
    assert len(logged) == 2  # the probabilities change once: at the end of pretraining
    monkeypatch.setenv("SYNTHAUG_SCHEDULE", "sometimes")
    with pytest.raises(ValueError, match="SYNTHAUG_SCHEDULE"):
        mod.synthaug_schedule()
