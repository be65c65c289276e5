"""The paper's "ordinary augmentation": random flip, rotation, affine and brightness.

torchvision's v2 transforms move the image and its ``tv_tensors.Mask`` together,
so geometry stays paired; brightness touches only the image.
"""
from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2


def ordinary_augmentation(rotation: float = 15, translate: float = 0.1, scale=(0.9, 1.1), brightness: float = 0.2):
    """A callable for a dataset's ``transform`` hook: item dict in, augmented item dict out."""
    geometric = v2.Compose([
        v2.RandomHorizontalFlip(),
        v2.RandomRotation(rotation),
        v2.RandomAffine(degrees=0, translate=(translate, translate), scale=scale),
    ])
    photometric = v2.ColorJitter(brightness=brightness)

    def apply(item: dict) -> dict:
        image, mask = geometric(tv_tensors.Image(item["image"]), tv_tensors.Mask(item["mask"]))
        image = photometric(image).clamp(0, 1)
        return {**item, "image": torch.as_tensor(image), "mask": torch.as_tensor(mask)}

    return apply
