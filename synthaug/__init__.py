"""synthaug: paired synthetic augmentation (image + lesion mask) for segmentation trainers."""
from .errors import SynthaugError
from .pipelines.base import Condition, Pair, PairGenerator, create_generator, list_generators, register_generator

__version__ = "0.1.0"


def __getattr__(name):
    """Model classes diffusers resolves by name from a checkpoint's model_index.json ("synthaug", "SCMGGenerator")."""
    if name == "SCMGGenerator":
        from .models.scmg import SCMGGenerator

        return SCMGGenerator
    raise AttributeError(name)

__all__ = [
    "Condition",
    "Pair",
    "PairGenerator",
    "SynthaugError",
    "create_generator",
    "list_generators",
    "register_generator",
]
