"""synthaug: paired synthetic augmentation (image + lesion mask) for segmentation trainers."""
from .errors import SynthaugError
from .pipelines.base import Condition, Pair, PairGenerator, create_generator, list_generators, register_generator

__version__ = "0.1.0"

__all__ = [
    "Condition",
    "Pair",
    "PairGenerator",
    "SynthaugError",
    "create_generator",
    "list_generators",
    "register_generator",
]
