"""Preview grids: each pair drawn as its image with the mask outline in colour."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import binary_erosion


def overlay(image: np.ndarray, mask: np.ndarray, color=(255, 64, 32)) -> np.ndarray:
    """RGB image with the mask's one-pixel outline painted in ``color``."""
    rgb = np.repeat(image[..., None], 3, axis=2).copy()
    m = mask.astype(bool)
    rgb[m & ~binary_erosion(m)] = color
    return rgb


def save_grid(path: str | Path, images: Sequence[np.ndarray], masks: Sequence[np.ndarray],
              titles: Sequence[str] | None = None, ncol: int = 8, tile: int = 128) -> Path:
    """Write a PNG grid of overlays (resized to ``tile``), with an optional caption per tile."""
    n = len(images)
    ncol = max(1, min(ncol, n))
    nrow = (n + ncol - 1) // ncol
    cap = 14 if titles else 0
    grid = Image.new("RGB", (ncol * tile, nrow * (tile + cap)), (0, 0, 0))
    draw = ImageDraw.Draw(grid)
    for i, (img, msk) in enumerate(zip(images, masks)):
        r, c = divmod(i, ncol)
        tile_img = Image.fromarray(overlay(img, msk)).resize((tile, tile), Image.BILINEAR)
        grid.paste(tile_img, (c * tile, r * (tile + cap) + cap))
        if titles:
            draw.text((c * tile + 2, r * (tile + cap)), titles[i][: tile // 6], fill=(255, 255, 255))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return path


def save_mask_grid(path: str | Path, masks: Sequence[np.ndarray], boxes: Sequence[Sequence[float]],
                   titles: Sequence[str] | None = None, ncol: int = 8) -> Path:
    """Masks (white) with their requested rectangle (normalised ``[x0, y0, x1, y1]``) outlined in colour."""
    tiles, rects = [], []
    for mask, box in zip(masks, boxes):
        h, w = mask.shape
        x0, x1 = (np.array(box[0::2]) * w).round().astype(int)
        y0, y1 = (np.array(box[1::2]) * h).round().astype(int)
        rect = np.zeros((h, w), bool)
        rect[y0:y1, x0:x1] = True
        tiles.append((np.asarray(mask) > 0).astype(np.uint8) * 255)
        rects.append(rect)
    return save_grid(path, tiles, rects, titles, ncol=ncol)

