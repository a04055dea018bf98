"""A conditional DCGAN for posters at their 2:3 aspect.

The generator starts from a 4x6 map and doubles it up to the poster size. The condition (genres
multi-hot, decade index) is embedded and fed to the generator beside the noise and through
conditional batch norm at every scale, and to the discriminator by projection (Miyato & Koyama 2018): D's score gets <embed(condition), features>,
so D judges "a Horror poster from the 1980s", not only "a poster". The discriminator has spectral
norm on every layer and no batch norm, so one forward can take real and fake images together.
With `conditional=False` both ignore the condition: the unconditional baseline, same budget.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import spectral_norm

BASE = (4, 6)  # width, height of the first feature map; doubled until the poster size


def n_upsamplings(size: tuple[int, int]) -> int:
    w, h = size
    n = round(math.log2(w / BASE[0]))
    if n < 2 or (BASE[0] << n, BASE[1] << n) != (w, h):
        raise ValueError(f"GAN size must be 2:3 and {BASE[0]}x{BASE[1]} doubled at least twice "
                         f"(32x48, 64x96, 128x192, ...), not {w}x{h}")
    return n


class ConditionEmbedding(nn.Module):
    """Genres (multi-hot, averaged) plus decade, as one vector."""

    def __init__(self, n_genres: int, n_decades: int, dim: int):
        super().__init__()
        self.genres = nn.Linear(n_genres, dim, bias=False)
        self.decades = nn.Embedding(n_decades, dim)

    def forward(self, genres: torch.Tensor, decades: torch.Tensor) -> torch.Tensor:
        share = genres / genres.sum(1, keepdim=True).clamp(min=1)
        return self.genres(share) + self.decades(decades)


class ConditionalBatchNorm(nn.Module):
    """Batch norm whose scale and shift come from the condition (as in SNGAN and BigGAN's generators):
    the condition steers every scale of the image, not only the first layer's input."""

    def __init__(self, width: int, cond_dim: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(width, affine=False)
        self.scale = nn.Linear(cond_dim, width)
        self.shift = nn.Linear(cond_dim, width)
        for layer in (self.scale, self.shift):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale = 1 + self.scale(cond)[:, :, None, None]
        return self.norm(x) * scale + self.shift(cond)[:, :, None, None]


class Generator(nn.Module):
    def __init__(self, size: tuple[int, int], n_genres: int, n_decades: int, *, z_dim: int = 128,
                 channels: int = 32, conditional: bool = True):
        super().__init__()
        self.z_dim, self.conditional = z_dim, conditional
        n = n_upsamplings(size)
        width = channels * 2 ** (n - 1)
        cond_dim = z_dim if conditional else 0
        self.embed = ConditionEmbedding(n_genres, n_decades, cond_dim) if conditional else None
        self.project = nn.Linear(z_dim + cond_dim, width * BASE[0] * BASE[1])
        self.base_width = width
        self.norms, self.convs = nn.ModuleList(), nn.ModuleList()
        for _ in range(n - 1):
            self.norms.append(ConditionalBatchNorm(width, cond_dim) if conditional else nn.BatchNorm2d(width))
            self.convs.append(nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False))
            width //= 2
        self.norms.append(ConditionalBatchNorm(width, cond_dim) if conditional else nn.BatchNorm2d(width))
        self.to_rgb = nn.ConvTranspose2d(width, 3, 4, 2, 1)

    def forward(self, z: torch.Tensor, genres: torch.Tensor, decades: torch.Tensor,
                strength: float = 1.0) -> torch.Tensor:
        """Images in [-1, 1], (B, 3, H, W); `strength` scales the condition (transitional conditioning)."""
        cond = condition_vector(self.embed, genres, decades, strength) if self.conditional else None
        x = self.project(torch.cat([z, cond], 1) if self.conditional else z)
        x = x.view(len(z), self.base_width, BASE[1], BASE[0])
        for k, norm in enumerate(self.norms):
            x = torch.relu(norm(x, cond) if self.conditional else norm(x))
            x = self.convs[k](x) if k < len(self.convs) else self.to_rgb(x)
        return torch.tanh(x)


class Discriminator(nn.Module):
    def __init__(self, size: tuple[int, int], n_genres: int, n_decades: int, *, channels: int = 32,
                 conditional: bool = True):
        super().__init__()
        n = n_upsamplings(size)
        layers, width = [], 3
        for k in range(n):
            out = channels * 2 ** k
            layers += [spectral_norm(nn.Conv2d(width, out, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
            width = out
        self.body = nn.Sequential(*layers)
        self.score = spectral_norm(nn.Linear(width, 1))
        self.embed = ConditionEmbedding(n_genres, n_decades, width) if conditional else None
        # An auxiliary classifier (AC-GAN) beside the projection: D also names the genres and decade
        # of what it sees, which gives G a direct, strong signal to make its condition recognisable.
        self.classify = nn.Linear(width, n_genres + n_decades) if conditional else None
        if conditional:
            spectral_norm(self.embed.genres)
            spectral_norm(self.embed.decades)

    def forward(self, images: torch.Tensor, genres: torch.Tensor, decades: torch.Tensor, strength: float = 1.0):
        """(one realism score per image (B,), genre and decade logits (B, G + D) or None if unconditional);
        `strength` scales the projection on the condition (transitional conditioning)."""
        h = self.body(images).sum(dim=(2, 3))
        out = self.score(h).squeeze(1)
        if self.embed is None:
            return out, None
        return out + (condition_vector(self.embed, genres, decades, strength) * h).sum(1), self.classify(h)


def condition_vector(embed: ConditionEmbedding, genres: torch.Tensor, decades: torch.Tensor,
                     strength: float) -> torch.Tensor:
    """The embedded condition, scaled by `strength` while the condition is being ramped in."""
    cond = embed(genres, decades)
    return cond if strength == 1 else cond * strength
