"""Torch datasets for segmentation loops: real pairs and real + synthetic mixes."""
from .datasets import PairDataset
from .mix import PairBank, SyntheticMix

__all__ = ["PairBank", "PairDataset", "SyntheticMix"]
