"""Builders for the BUS generator's denoisers: a text-conditioned diffusers UNet2DConditionModel on
VAE latents and the ControlNet that adds the lesion mask (Pan et al., MedIA 2025, section 3.1)."""
from __future__ import annotations

import torch
from diffusers import ControlNetModel, UNet2DConditionModel


def vae_factor(vae) -> int:
    """Pixels per latent cell of an AutoencoderKL: each encoder level but the last halves the size."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def latent_unet(cross_attention_dim: int, sample_size: int = 32, in_channels: int = 4,
                block_out_channels=(64, 128, 128), layers_per_block: int = 1, cross_attention_levels=(1, 2),
                attention_head_dim: int = 8, norm_num_groups: int = 16) -> UNet2DConditionModel:
    """Cross-attention to the prompt only at ``cross_attention_levels`` (the coarse ones: cheap on CPU)."""
    n = len(block_out_channels)
    down = tuple("CrossAttnDownBlock2D" if i in cross_attention_levels else "DownBlock2D" for i in range(n))
    up = tuple("CrossAttnUpBlock2D" if (n - 1 - i) in cross_attention_levels else "UpBlock2D" for i in range(n))
    return UNet2DConditionModel(sample_size=sample_size, in_channels=in_channels, out_channels=in_channels,
                                down_block_types=down, up_block_types=up, block_out_channels=tuple(block_out_channels),
                                layers_per_block=layers_per_block, cross_attention_dim=cross_attention_dim,
                                attention_head_dim=attention_head_dim, norm_num_groups=norm_num_groups)


def mask_controlnet(unet: UNet2DConditionModel, latent_factor: int,
                    conditioning_channels: tuple = (16, 32, 64), hint_channels: int = 1) -> ControlNetModel:
    """A ControlNet copied from ``unet`` (diffusers' recipe) whose hint encoder takes a 1-channel mask at
    image resolution (2 channels with the lesion-contrast hint) and downsamples it ``latent_factor`` times
    to the latent grid."""
    levels = latent_factor.bit_length() - 1  # stride-2 convs in the hint encoder
    chans = tuple(conditioning_channels[: levels + 1])
    if 2 ** levels != latent_factor or len(chans) != levels + 1:
        raise ValueError(f"latent factor {latent_factor} needs {levels + 1} conditioning channel widths")
    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=chans, conditioning_channels=hint_channels)


def load_grown(model: torch.nn.Module, state: dict) -> None:
    """Load ``state`` into ``model`` whose convolutions may take more input channels (a hint encoder grown
    by the contrast channel): the extra input channels get zero weights, so the grown model computes
    exactly what the loaded one did until training teaches it to use them."""
    own, state = model.state_dict(), dict(state)
    for key, value in state.items():
        if key in own and value.ndim == 4 and own[key].shape[1] > value.shape[1]:
            grown = torch.zeros_like(own[key])
            grown[:, : value.shape[1]] = value
            state[key] = grown
    model.load_state_dict(state)
