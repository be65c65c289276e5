"""The scarcity axis (issue 31): nested stratified real fractions, the step floor, schedule conditions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.bench.conditions import TrainCondition
from benchmarks.bench.splits import real_fraction_subset
from integrations.smp_timm._loop import epoch_sampling
from synthaug.data.datasets import PairDataset


def cases(n_benign, n_malignant):
    recs = [(np.zeros((4, 4), np.uint8), np.zeros((4, 4), bool), "benign", f"b{i}") for i in range(n_benign)]
    recs += [(np.zeros((4, 4), np.uint8), np.zeros((4, 4), bool), "malignant", f"m{i}") for i in range(n_malignant)]
    return PairDataset(recs)


def ids(ds):
    return {r.case_id for r in ds.records}


def test_real_fractions_are_stratified_nested_and_fixed_per_seed():
    train = cases(200, 100)
    f10, f25, f100 = (real_fraction_subset(train, f, seed=2) for f in (0.1, 0.25, 1.0))
    assert len(f10) == 30 and sum(r.label == "malignant" for r in f10.records) == 10
    assert ids(f10) < ids(f25) < ids(f100) and f100 is train
    assert ids(real_fraction_subset(train, 0.1, seed=2)) == ids(f10)
    assert ids(real_fraction_subset(train, 0.1, seed=3)) != ids(f10)
    assert len(real_fraction_subset(cases(5, 1), 0.1, 0)) == 2  # at least one case of each type
    with pytest.raises(SystemExit, match="real-fraction"):
        real_fraction_subset(train, 0.0, 0)


def test_short_epochs_are_stretched_to_the_step_floor():
    g = torch.Generator().manual_seed(0)
    kw = epoch_sampling(33, 16, 20, g)
    loader = torch.utils.data.DataLoader(list(range(33)), batch_size=16, drop_last=True, generator=g, **kw)
    assert len(loader) == 20 and sorted(set(torch.cat(list(loader)).tolist())) == list(range(33))
    assert epoch_sampling(331, 16, 20, g) == {"shuffle": True}  # a full-size epoch is left alone


@pytest.mark.parametrize("name, ratio, pool, schedule", [("bus 100%", 1.0, 1.0, "constant"),
                                                         ("bus 100% bank 1000%", 1.0, 10.0, "constant"),
                                                         ("bus 100% bank 400% pretrain", 1.0, 4.0, "pretrain"),
                                                         ("bus  25%  decay + ordinary", 0.25, 0.25, "decay")])
def test_schedule_conditions_parse(name, ratio, pool, schedule):
    c = TrainCondition.parse(name)
    assert (c.ratio, c.pool_ratio, c.schedule, c.synthetic) == (ratio, pool, schedule, True)
    assert TrainCondition.parse(c.name) == c


@pytest.mark.parametrize("name", ["bus 100% bank 50%", "copy-paste 100% pretrain", "bus 100% warmup"])
def test_bad_schedule_conditions_are_refused(name):
    with pytest.raises(SystemExit):
        TrainCondition.parse(name)
