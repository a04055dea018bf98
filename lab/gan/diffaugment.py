"""DiffAugment (Zhao et al. 2020): differentiable augmentation applied to real and fake alike.

D sees augmented images only, so on a few hundred posters it cannot memorise them, while the
gradients still reach G through the augmentation. Each op draws from a seeded generator so a
resumed run repeats the same draws.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def diff_augment(x: torch.Tensor, policy: str, generator: torch.Generator) -> torch.Tensor:
    """Images in [-1, 1], (B, 3, H, W); policy: comma-separated of color, translation, cutout."""
    for name in filter(None, (p.strip() for p in policy.split(","))):
        if name not in OPS:
            raise ValueError(f"unknown DiffAugment op {name!r}; known: {', '.join(OPS)}")
        x = OPS[name](x, generator)
    return x


def _rand(x: torch.Tensor, generator: torch.Generator, *shape) -> torch.Tensor:
    # Drawn on the CPU (the same draws on any device); a copy that does not wait keeps a GPU's queue full.
    return torch.rand(len(x), *shape, generator=generator).to(x.device, non_blocking=True).to(x.dtype)


def color(x, g):
    x = x + (_rand(x, g, 1, 1, 1) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(x, g, 1, 1, 1) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(x, g, 1, 1, 1) + 0.5) + mean


def translation(x, g, ratio: float = 0.125):
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = (_rand(x, g) * (2 * sh + 1)).long() - sh
    dx = (_rand(x, g) * (2 * sw + 1)).long() - sw
    ys = (torch.arange(h, device=x.device).view(1, h, 1) + dy.view(b, 1, 1)).clamp(-1, h)
    xs = (torch.arange(w, device=x.device).view(1, 1, w) + dx.view(b, 1, 1)).clamp(-1, w)
    padded = F.pad(x, [1, 1, 1, 1])  # out-of-range pixels read the zero border
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, ys + 1, xs + 1].permute(0, 3, 1, 2)


def cutout(x, g, ratio: float = 0.5):
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = (_rand(x, g) * (h + 1 - ch % 2)).long()
    cx = (_rand(x, g) * (w + 1 - cw % 2)).long()
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    top = ys - cy.view(b, 1, 1) + ch // 2
    left = xs - cx.view(b, 1, 1) + cw // 2
    inside = (top >= 0) & (top < ch) & (left >= 0) & (left < cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


OPS = {"color": color, "translation": translation, "cutout": cutout}
