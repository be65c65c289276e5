"""PairDataset: the shared item format, resizing, constructors and bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from synthaug.data import PairDataset
from synthaug.data.datasets import label_code
from synthaug.errors import SynthaugError

from synthdata_helpers import manifest_cases, random_pair, write_expanded_raw


def test_item_format(real_dataset):
    item = real_dataset[0]
    assert set(item) == {"image", "mask", "label", "synthetic", "case_id"}
    assert item["image"].dtype == torch.float32 and item["image"].shape == (1, 16, 16)
    assert 0 <= item["image"].min() and item["image"].max() <= 1
    assert item["mask"].dtype == torch.float32 and item["mask"].shape == (1, 16, 16)
    assert set(item["mask"].unique().tolist()) == {0.0, 1.0}
    assert (item["label"], item["synthetic"], item["case_id"]) == (0, False, "real_00")
    assert real_dataset[3]["label"] == 1
    assert real_dataset.labels == [0, 0, 0, 1, 0, 0, 1, 0, 0, 1]


def test_native_size_and_unknown_label():
    image, mask = random_pair(np.random.default_rng(0), 20)
    ds = PairDataset([(image, mask, None, "a")])
    item = ds[0]
    assert item["image"].shape == (1, 20, 20) and item["label"] == -1
    assert ds.size == (20, 20)  # one shared shape counts as a fixed size (SyntheticMix matches it)
    mixed = PairDataset([(image, mask, None, "a"), (image[:10], mask[:10], None, "b")])
    assert mixed.size is None and mixed[1]["image"].shape == (1, 10, 20)
    assert torch.equal(item["image"][0], torch.from_numpy(image).float() / 255)
    assert torch.equal(item["mask"][0], torch.from_numpy(mask).float())


def test_rectangular_size_and_transform():
    image, mask = random_pair(np.random.default_rng(0), 20)

    def flip(item):
        item["image"] = item["image"].flip(-1)
        return item

    plain, flipped = (PairDataset([(image, mask, "benign", "a")], size=(8, 12), transform=t)[0] for t in (None, flip))
    assert plain["image"].shape == (1, 8, 12)
    assert torch.equal(flipped["image"], plain["image"].flip(-1))


@pytest.mark.parametrize(
    "records, size, match",
    [
        ([], None, "at least one"),
        ([(np.zeros((4, 4), np.uint8), np.zeros((5, 4), bool), None, "a")], None, "differ in size"),
        ([(np.zeros((4, 4), np.float32), np.zeros((4, 4), bool), None, "a")], None, "uint8"),
        ([(np.zeros((4, 4), np.uint8), np.zeros((4, 4), bool), "normal", "a")], None, "tumour type"),
        ([(np.zeros((4, 4), np.uint8), np.zeros((4, 4), bool), None, "a")], 0, "positive"),
    ],
)
def test_bad_records(records, size, match):
    with pytest.raises(SynthaugError, match=match):
        PairDataset(records, size=size)


def test_from_raw_leaves_synthetic_cases_out(tmp_path, tiny_generator_dir):
    root = write_expanded_raw(tmp_path, tiny_generator_dir, n_real=4, ratio=0.75)
    real = PairDataset.from_raw(root, size=16)
    assert [real[i]["case_id"] for i in range(len(real))] == [f"busi_{i:04d}" for i in range(4)]
    assert real.labels == [0, 1, 0, 1] and not any(real[i]["synthetic"] for i in range(4))
    assert real[0]["mask"].sum() > 0  # {0, 1} label PNGs are read as lesion, not thresholded away
    every = PairDataset.from_raw(root, include_synthetic=True)
    synthetic = manifest_cases(root)
    assert len(every) == 7 and [every[i]["case_id"] for i in range(4, 7)] == list(synthetic)
    assert all(every[i]["synthetic"] for i in range(4, 7))
    expected = [label_code(e["conditions"]["label"]) for e in synthetic.values()]  # from the manifest
    assert every.labels[4:] == expected
    assert len(PairDataset.from_raw(root, cases=["busi_0001", "synth_00000"])) == 2
    with pytest.raises(SynthaugError, match="no case"):
        PairDataset.from_raw(root, cases=["nope"])


@pytest.mark.realdata
def test_public_sets(busi_root, stu_root):
    busi = PairDataset.from_busi(busi_root, size=128)
    assert len(busi) == 518 and set(busi.labels) == {0, 1}
    assert busi[0]["image"].shape == (1, 128, 128)
    stu = PairDataset.from_stu(stu_root, size=128)
    assert len(stu) == 42 and set(stu.labels) == {-1}
    assert all(stu[i]["mask"].sum() > 0 for i in range(len(stu)))
