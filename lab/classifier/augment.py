"""Augmentation that keeps a poster a poster: a 2:3 crop, a small rotation, colour jitter, and on request
a mirror image.

All on a batch tensor at once (CPU or GPU), each poster with its own draw from a seeded
generator, so a resumed run repeats exactly the augmentation of an uninterrupted one. No flips by
default: a mirrored poster has mirrored text, though the classifier reads mirrored posters well.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment_posters(images: torch.Tensor, generator: torch.Generator, *, min_scale: float = 0.75,
                    max_degrees: float = 5.0, jitter: float = 0.2, flip: float = 0.0) -> torch.Tensor:
    """uint8 or float images (B, 3, H, W) in [0, 255] -> augmented float images in [0, 255]; each mirrored
    left to right with chance `flip`."""
    b, _, h, w = images.shape
    x = images.float()
    # Every draw of the batch at once, in the order they were always drawn, moved to the device in one
    # copy that does not wait for it: per-draw copies would each stall a GPU's queue.
    u = torch.rand(7, b, generator=generator).to(x.device, non_blocking=True)

    def draw(k, low, high):
        return u[k] * (high - low) + low

    # Crop: the same fraction of width and height keeps the 2:3 aspect; placed anywhere inside.
    scale = draw(0, min_scale, 1.0)
    angle = draw(1, -max_degrees, max_degrees) * math.pi / 180
    shift_x, shift_y = draw(2, -1, 1) * (1 - scale), draw(3, -1, 1) * (1 - scale)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Output -> input sampling grid in normalised coordinates, corrected for the non-square pixels grid.
    theta = torch.stack([
        torch.stack([scale * cos, -scale * sin * h / w, shift_x], 1),
        torch.stack([scale * sin * w / h, scale * cos, shift_y], 1),
    ], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    brightness, contrast, saturation = (draw(k, 1 - jitter, 1 + jitter).view(b, 1, 1, 1) for k in (4, 5, 6))
    x = x * brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * saturation + grey
    if flip > 0:  # drawn after the rest, so that runs without it keep their draws
        mirrored = (torch.rand(b, generator=generator) < flip).to(x.device, non_blocking=True)
        x = torch.where(mirrored.view(b, 1, 1, 1), x.flip(3), x)
    return x.clamp(0, 255)
