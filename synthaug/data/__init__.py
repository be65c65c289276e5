"""Torch datasets of real pairs and banks of generated ones (``synthaug.mix.SyntheticMix`` mixes them)."""
from .datasets import PairDataset
from .mix import PairBank

__all__ = ["PairBank", "PairDataset"]
