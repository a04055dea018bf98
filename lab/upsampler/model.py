"""`PosterUpsampler`: doubles a poster's width and height.

The bilinear enlargement of the small poster plus what a small CNN adds to it: residual blocks at
the small size (cheap), then a sub-pixel convolution to the large size. It is trained supervised on
real posters (large, and the same shrunk by 2x2 averaging), so it learns how posters look when
sharper, with no adversary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Residual(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class PosterUpsampler(nn.Module):
    def __init__(self, channels: int = 32, blocks: int = 4):
        super().__init__()
        self.head = nn.Conv2d(3, channels, 3, 1, 1)
        self.blocks = nn.Sequential(*(_Residual(channels) for _ in range(blocks)))
        self.tail = nn.Sequential(nn.Conv2d(channels, 3 * 4, 3, 1, 1), nn.PixelShuffle(2))
        nn.init.zeros_(self.tail[0].weight)  # starts as plain bilinear enlargement
        nn.init.zeros_(self.tail[0].bias)

    def forward(self, small: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) in [-1, 1] -> (B, 3, 2h, 2w) in [-1, 1]."""
        big = F.interpolate(small, scale_factor=2, mode="bilinear", align_corners=False)
        h = self.head(small)
        return (big + self.tail(h + self.blocks(h))).clamp(-1, 1)


def shrink(images: torch.Tensor) -> torch.Tensor:
    """What the upsampler learns to undo: each 2x2 block averaged."""
    return F.avg_pool2d(images, 2)
