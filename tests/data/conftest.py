"""Fixtures for the synthaug.data tests."""
from __future__ import annotations

import numpy as np
import pytest

from synthaug.data import PairDataset
from synthdata_helpers import random_pair


@pytest.fixture
def real_dataset() -> PairDataset:
    """Ten in-memory cases (7 benign, 3 malignant) of mixed sizes, resized to 16x16."""
    rng = np.random.default_rng(0)
    records = []
    for i in range(10):
        image, mask = random_pair(rng, 20 + i)
        records.append((image, mask, "malignant" if i % 3 == 0 and i else "benign", f"real_{i:02d}"))
    return PairDataset(records, size=16)
