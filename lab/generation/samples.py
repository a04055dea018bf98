"""Generated images as PNG files and grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images in [-1, 1], (B, 3, H, W) -> uint8 (B, H, W, 3)."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round()
    return x.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def save_grid(images: np.ndarray, columns: int, path: Path, gap: int = 2, row_labels: list[str] | None = None) -> None:
    """uint8 (B, H, W, 3) -> one PNG, `columns` posters per row, separated by a white gap, each row
    optionally named in a margin on its left."""
    b, h, w, _ = images.shape
    rows = -(-b // columns)
    margin = 0
    if row_labels:
        font = ImageFont.load_default()
        margin = max(int(font.getlength(label)) for label in row_labels) + 2 * gap + 4
    canvas = np.full((rows * (h + gap) - gap, margin + columns * (w + gap) - gap, 3), 255, np.uint8)
    for k, image in enumerate(images):
        r, c = divmod(k, columns)
        canvas[r * (h + gap):r * (h + gap) + h, margin + c * (w + gap):margin + c * (w + gap) + w] = image
    picture = Image.fromarray(canvas)
    if row_labels:
        draw = ImageDraw.Draw(picture)
        for r, label in enumerate(row_labels):
            draw.text((gap, r * (h + gap) + h // 2 - 5), label, fill=(0, 0, 0), font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
