"""Training data for generators: an nnU-Net raw folder or the BUSI release (train split only)."""
from __future__ import annotations

from pathlib import Path

from ..errors import SynthaugError


def training_dataset(data: str | Path, size: int):
    """PairDataset of the *training* cases of ``data`` at ``size`` x ``size``.

    BUSI is read through its split file, so generators never see the test split.
    """
    from ..data.datasets import PairDataset

    data = Path(data)
    if (data / "dataset.json").is_file():
        return PairDataset.from_raw(data, size=size)
    if (data / "Dataset_BUSI_with_GT").is_dir() or (data / "BUSI" / "Dataset_BUSI_with_GT").is_dir():
        root = data if (data / "Dataset_BUSI_with_GT").is_dir() else data / "BUSI"
        return PairDataset.from_busi(root, split="train", size=size)
    raise SynthaugError(f"{data} is neither an nnU-Net raw dataset folder nor the BUSI release folder")
