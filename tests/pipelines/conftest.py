"""A tiny randomly initialised PIG checkpoint for plumbing tests (never shipped)."""
from __future__ import annotations

import pytest
import torch

from synthaug.models.unets import pixel_unet
from synthaug.pipelines.pig import PIGPipeline, save_pig
from synthaug.pipelines.schedulers import training_scheduler

TINY = dict(block_out_channels=(8, 16), attention_levels=(1,), norm_num_groups=4)


@pytest.fixture(scope="session")
def tiny_pig_dir(tmp_path_factory):
    torch.manual_seed(0)
    pipe = PIGPipeline(pixel_unet(2, 1, 16, num_class_embeds=3, **TINY), pixel_unet(2, 1, 16, num_class_embeds=3, **TINY),
                       training_scheduler())
    return save_pig(pipe, tmp_path_factory.mktemp("pig"), {"output_size": 32, "default_steps": 4})
