"""synthaug: paired synthetic augmentation (image + lesion mask) for segmentation trainers."""
from .errors import SynthaugError
from .pipelines.base import Condition, Pair, PairGenerator
from .pipelines.registry import create_generator, list_generators, register_generator

__version__ = "0.1.0"


def __getattr__(name):
    """Model classes diffusers resolves by name from a checkpoint's model_index.json ("synthaug", "SCMGGenerator"),
    and ``SyntheticMix``, imported on first use."""
    if name == "SCMGGenerator":
        from .models.scmg import SCMGGenerator

        return SCMGGenerator
    if name == "SyntheticMix":  # lazy: importing synthaug stays light (no training or smp imports)
        from .mix import SyntheticMix

        return SyntheticMix
    raise AttributeError(name)

__all__ = [
    "Condition",
    "Pair",
    "PairGenerator",
    "SynthaugError",
    "SyntheticMix",
    "create_generator",
    "list_generators",
    "register_generator",
]
