"""Builders for diffusers U-Nets from small JSON/YAML configs."""
from __future__ import annotations

from diffusers import UNet2DModel


def pixel_unet(
    in_channels: int,
    out_channels: int,
    sample_size: int,
    block_out_channels=(32, 64, 128, 128),
    layers_per_block: int = 1,
    attention_levels=(3,),
    num_class_embeds: int | None = None,
    norm_num_groups: int = 8,
    **kwargs,
) -> UNet2DModel:
    """A diffusers ``UNet2DModel`` with self-attention only at ``attention_levels`` (cheap on CPU)."""
    n = len(block_out_channels)
    down = ["AttnDownBlock2D" if i in attention_levels else "DownBlock2D" for i in range(n)]
    up = ["AttnUpBlock2D" if (n - 1 - i) in attention_levels else "UpBlock2D" for i in range(n)]
    return UNet2DModel(
        sample_size=sample_size,
        in_channels=in_channels,
        out_channels=out_channels,
        block_out_channels=tuple(block_out_channels),
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        layers_per_block=layers_per_block,
        num_class_embeds=num_class_embeds,
        norm_num_groups=norm_num_groups,
        **kwargs,
    )
