"""SyntheticMix and PairBank: ratio arithmetic, sources, determinism, refresh and bad input."""
from __future__ import annotations

import pickle

import pytest
import torch
from torch.utils.data import DataLoader

from synthaug.data import PairBank, PairDataset
from synthaug.mix import SyntheticMix
from synthaug.data.datasets import label_code
from synthaug.errors import SynthaugError
from synthaug.pipelines.base import pair_seeds
from synthaug.pipelines.registry import create_generator
from synthdata_helpers import manifest_cases, write_expanded_raw, write_raw, write_sample_folder


@pytest.fixture
def bank(tmp_path) -> PairBank:
    return PairBank.open(write_sample_folder(tmp_path / "sample", 5, labels=["benign", "malignant"] * 2 + [None]))


@pytest.fixture(scope="module")
def tiny_generator(tiny_generator_dir):
    return create_generator(tiny_generator_dir)


def synthetic_ids(mix) -> list[str]:
    return [mix[i]["case_id"] for i in range(mix.n_real, len(mix))]


@pytest.mark.parametrize("ratio, n_synthetic", [(0.25, 2), (0.5, 5), (1.0, 10), (2.0, 20), (0.06, 1)])
def test_length_is_real_plus_rounded_ratio(real_dataset, bank, ratio, n_synthetic):
    mix = SyntheticMix(real_dataset, bank, ratio=ratio)
    assert (mix.n_real, mix.n_synthetic, len(mix)) == (10, n_synthetic, 10 + n_synthetic)


def test_items_real_first_then_synthetic(real_dataset, bank):
    mix = SyntheticMix(real_dataset, bank, ratio=1.0)
    for i in range(10):
        assert not mix[i]["synthetic"] and torch.equal(mix[i]["image"], real_dataset[i]["image"])
    synth = [mix[i] for i in range(10, 20)]
    assert all(s["synthetic"] and s["image"].shape == (1, 16, 16) for s in synth)  # resized to the real size
    assert all(set(s["mask"].unique().tolist()) <= {0.0, 1.0} and s["mask"].sum() > 0 for s in synth)
    assert set(s["case_id"] for s in synth) == {f"pair_{i:05d}" for i in range(5)}  # every bank pair used twice
    by_name = {s["case_id"]: s["label"] for s in synth}
    assert by_name == {"pair_00000": 0, "pair_00001": 1, "pair_00002": 0, "pair_00003": 1, "pair_00004": -1}
    assert mix[-1]["case_id"] == synth[-1]["case_id"]
    with pytest.raises(IndexError):
        mix[20]
    batch = next(iter(DataLoader(mix, batch_size=20)))
    assert batch["image"].shape == (20, 1, 16, 16) and batch["synthetic"].sum() == 10


def test_same_seed_same_items_and_epoch_reshuffles(real_dataset, bank):
    a, b = (SyntheticMix(real_dataset, bank, ratio=0.5, seed=3) for _ in range(2))
    assert synthetic_ids(a) == synthetic_ids(b)
    orders = set()
    for epoch in range(6):
        a.set_epoch(epoch)
        orders.add(tuple(synthetic_ids(a)))
    assert len(orders) > 1  # each epoch draws its own subset / order of the bank
    a.set_epoch(0)
    assert synthetic_ids(a) == synthetic_ids(b)


def test_identical_whatever_the_workers(real_dataset, tiny_generator):
    """Batches match num_workers=0: spawn checks that the pickled state (cache + epoch order)
    suffices, fork with 2 workers that the worker an index lands on does not matter
    (2 spawn workers would take ~8 s on the shared 2-core CPU)."""
    mix = SyntheticMix(real_dataset, tiny_generator, ratio=0.5, seed=1)
    mix.set_epoch(1)

    def collect(**kw):
        g = torch.Generator().manual_seed(0)
        return [(b["case_id"], b["image"]) for b in DataLoader(mix, batch_size=4, shuffle=True, generator=g, **kw)]

    serial = collect(num_workers=0)
    for kw in ({"num_workers": 1, "multiprocessing_context": "spawn"}, {"num_workers": 2, "multiprocessing_context": "fork"}):
        parallel = collect(**kw)
        assert [ids for ids, _ in serial] == [ids for ids, _ in parallel]
        assert all(torch.equal(x, y) for (_, x), (_, y) in zip(serial, parallel))


def test_generator_source_labels_follow_real_shares(real_dataset, tiny_generator):
    mix = SyntheticMix(real_dataset, tiny_generator, ratio=2.0, seed=0)
    synth = [mix[i] for i in range(10, 30)]
    assert all(s["synthetic"] and s["image"].shape == (1, 16, 16) for s in synth)
    labels = [s["label"] for s in synth]
    assert set(labels) == {0, 1} and labels.count(0) > labels.count(1)  # 7:3 real benign:malignant
    again = SyntheticMix(real_dataset, tiny_generator, ratio=2.0, seed=0)
    assert all(torch.equal(s["image"], again[i + 10]["image"]) for i, s in enumerate(synth))
    other = SyntheticMix(real_dataset, tiny_generator, ratio=2.0, seed=1)
    assert set(synthetic_ids(other)).isdisjoint(synthetic_ids(mix))


def test_refresh_every_k_epochs(real_dataset, tiny_generator):
    mix = SyntheticMix(real_dataset, tiny_generator, ratio=0.5, seed=0, refresh_every=2)
    sets = []
    for epoch in range(5):
        mix.set_epoch(epoch)
        sets.append(frozenset(synthetic_ids(mix)))
    assert sets[0] == sets[1] and sets[2] == sets[3]
    assert sets[1].isdisjoint(sets[2]) and sets[3].isdisjoint(sets[4])

    never = SyntheticMix(real_dataset, tiny_generator, ratio=0.5, seed=0, cache_size=3)  # 5 slots, 3 pairs
    before = synthetic_ids(never)
    never.set_epoch(7)
    assert set(before) == set(synthetic_ids(never)) == {"synth_seed0", "synth_seed1", "synth_seed2"}


def test_worker_copy_drops_the_generator(real_dataset, tiny_generator):
    mix = SyntheticMix(real_dataset, tiny_generator, ratio=0.5, refresh_every=1)
    copy = pickle.loads(pickle.dumps(mix))
    assert copy._generator is None and torch.equal(copy[12]["image"], mix[12]["image"])
    with pytest.raises(SynthaugError, match="main process"):
        copy.set_epoch(1)


def test_bank_from_expanded_raw_folder(tmp_path, real_dataset, tiny_generator_dir):
    root = write_expanded_raw(tmp_path, tiny_generator_dir, n_real=4, ratio=0.75)
    bank = PairBank.open(root)
    synthetic = manifest_cases(root)
    assert [e.name for e in bank.entries] == list(synthetic) == ["synth_00000", "synth_00001", "synth_00002"]
    assert [e.label for e in bank.entries] == [e["conditions"]["label"] for e in synthetic.values()]
    pair = bank[0]
    assert pair.image.shape == (28, 28) and set(pair.mask.ravel().tolist()) <= {0, 1}
    mix = SyntheticMix(real_dataset, root, ratio=0.3)  # a folder path opens as a bank
    assert set(synthetic_ids(mix)) <= set(synthetic)
    with pytest.raises(SynthaugError, match="not expanded"):
        PairBank.open(write_raw(tmp_path / "plain"))  # never expanded: no synthetic pairs to read


def test_generator_cache_holds_what_expand_writes(tmp_path, tiny_generator, tiny_generator_dir):
    """Same seed, same real data: refresh 0 of the cache equals the expansion's cases."""
    root = write_expanded_raw(tmp_path, tiny_generator_dir, n_real=4, ratio=0.75)
    mix = SyntheticMix(PairDataset.from_raw(root), tiny_generator, ratio=0.75, seed=0)
    bank = PairBank.open(root)
    by_seed = {f"synth_seed{entry['seed']}": k for k, entry in enumerate(manifest_cases(root).values())}
    synth = [mix[i] for i in range(mix.n_real, len(mix))]
    assert sorted(s["case_id"] for s in synth) == sorted(by_seed)
    for item in synth:
        k = by_seed[item["case_id"]]
        assert item["label"] == label_code(bank.entries[k].label)
        assert torch.equal(item["image"][0], torch.from_numpy(bank[k].image).float() / 255)
        assert torch.equal(item["mask"][0], torch.from_numpy(bank[k].mask).float())


def test_bank_reads_what_synthaug_sample_writes(tmp_path, real_dataset, tiny_generator):
    from synthaug.sampling import sample_to_folder

    out = sample_to_folder(tiny_generator, 4, tmp_path / "sampled", seed=5)
    bank = PairBank.open(out)
    assert [e.label for e in bank.entries] == ["benign", "malignant"] * 2
    fresh = tiny_generator.sample(seeds=pair_seeds(5, 1))[0]
    assert (bank[0].image == fresh.image).all()
    assert len(SyntheticMix(real_dataset, bank, ratio=0.4)) == 14


def test_sample_folder_with_pairs_list_and_without_meta(tmp_path):
    root = write_sample_folder(tmp_path / "s", 2, labels=["malignant", "benign"])
    (root / "pairs.json").write_text('{"pairs": [{"name": "pair_00000", "label": "malignant"}]}')
    assert [e.label for e in PairBank.open(root).entries] == ["malignant", None]
    (root / "pairs.json").unlink()
    assert [e.label for e in PairBank.open(root).entries] == [None, None]


def test_bad_input(tmp_path, real_dataset, bank, tiny_generator):
    for ratio in (0, -0.5, float("nan"), 0.01):
        with pytest.raises(SynthaugError, match="ratio"):
            SyntheticMix(real_dataset, bank, ratio=ratio)
    with pytest.raises(SynthaugError, match="generator source"):
        SyntheticMix(real_dataset, bank, refresh_every=2)
    with pytest.raises(SynthaugError, match=">= 1"):
        SyntheticMix(real_dataset, tiny_generator, cache_size=0)
    with pytest.raises(SynthaugError, match="source must be"):
        SyntheticMix(real_dataset, [1, 2, 3])
    with pytest.raises(SynthaugError, match="seed"):
        SyntheticMix(real_dataset, bank, seed=-1)
    with pytest.raises(SynthaugError, match="neither"):
        PairBank.open(tmp_path)
    (tmp_path / "empty" / "images").mkdir(parents=True)
    with pytest.raises(SynthaugError, match="no synthetic pairs"):
        SyntheticMix(real_dataset, tmp_path / "empty")
    root = write_sample_folder(tmp_path / "broken", 2)
    (root / "masks" / "pair_00001.png").unlink()
    with pytest.raises(SynthaugError, match="missing"):
        PairBank.open(root)


def test_a_bank_far_smaller_than_its_slots_warns(real_dataset, bank, recwarn):
    """5 bank pairs for 20 synthetic slots: each would repeat 4 times an epoch; said, not silent (issue 33)."""
    with pytest.warns(UserWarning, match="the bank holds 5 pairs for 20 synthetic slots: each pair repeats about 4"):
        SyntheticMix(real_dataset, bank, ratio=2.0)
    SyntheticMix(real_dataset, bank, ratio=1.0)  # 10 slots, 2 per pair: no warning
    assert not [w for w in recwarn if "synthetic slots" in str(w.message)]


def test_filling_a_generator_cache_shows_progress(real_dataset, tiny_generator, capsys):
    SyntheticMix(real_dataset, tiny_generator, ratio=0.5, cache_size=3)
    assert f"sampling {tiny_generator.name}" in capsys.readouterr().err
