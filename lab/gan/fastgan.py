"""FastGAN's generator (Liu et al. 2021, "Towards Faster and Stabilized GAN Training"), at the posters' 2:3.

Each scale doubles the map by nearest upsampling and a 3x3 convolution into twice the channels,
which a gated linear unit halves again; every other scale has a second such convolution. Skip-layer
excitation lets the 4x6 and 8x12 maps gate the channels of the maps three scales finer, so the
coarse layout steers the fine texture cheaply. The condition enters as in the lab's DCGAN: beside
the noise, and through conditional batch norm at every scale. Noise injection is left out: it
would draw unseeded noise inside the forward pass, and runs must resume exactly.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import spectral_norm

from lab.gan.model import BASE, ConditionalBatchNorm, ConditionEmbedding, condition_vector, n_upsamplings


class _GatedNorm(nn.Module):
    """Batch norm (conditional where there is a condition), then a gated linear unit that halves the channels."""

    def __init__(self, width: int, cond_dim: int):
        super().__init__()
        self.norm = ConditionalBatchNorm(width, cond_dim) if cond_dim else nn.BatchNorm2d(width)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        x = self.norm(x, cond) if cond is not None else self.norm(x)
        a, b = x.chunk(2, dim=1)
        return a * torch.sigmoid(b)


class _UpBlock(nn.Module):
    def __init__(self, width_in: int, width_out: int, cond_dim: int, convs: int):
        super().__init__()
        self.convs = nn.ModuleList(spectral_norm(nn.Conv2d(w, 2 * width_out, 3, 1, 1, bias=False))
                                   for w in [width_in] + [width_out] * (convs - 1))
        self.gates = nn.ModuleList(_GatedNorm(2 * width_out, cond_dim) for _ in range(convs))

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
        for conv, gate in zip(self.convs, self.gates):
            x = gate(conv(x), cond)
        return x


class _Excitation(nn.Module):
    """Skip-layer excitation: a coarse map, pooled to 4x6, gives one gate per channel of a fine map."""

    def __init__(self, width_small: int, width_big: int):
        super().__init__()
        self.main = nn.Sequential(nn.AdaptiveAvgPool2d((BASE[1], BASE[0])),
                                  spectral_norm(nn.Conv2d(width_small, width_big, (BASE[1], BASE[0]), bias=False)),
                                  nn.SiLU(), spectral_norm(nn.Conv2d(width_big, width_big, 1, bias=False)), nn.Sigmoid())

    def forward(self, small: torch.Tensor, big: torch.Tensor) -> torch.Tensor:
        return big * self.main(small)


class FastGenerator(nn.Module):
    """Same call as the DCGAN's Generator: (z, genres, decades[, strength]) -> images in [-1, 1]."""

    def __init__(self, size: tuple[int, int], n_genres: int, n_decades: int, *, z_dim: int = 128,
                 channels: int = 32, conditional: bool = True):
        super().__init__()
        self.z_dim, self.conditional = z_dim, conditional
        n = n_upsamplings(size)
        # 4x6 ... the poster size, a quarter of the DCGAN's widths: its gated 3x3 convolutions cost about
        # as much per channel as sixteen of the DCGAN's strided transposed ones, so the two cost alike.
        widths = [max(4, channels * 2 ** min(n - k, 4) // 4) for k in range(n + 1)]
        cond_dim = z_dim if conditional else 0
        self.embed = ConditionEmbedding(n_genres, n_decades, cond_dim) if conditional else None
        self.project = nn.Linear(z_dim + cond_dim, 2 * widths[0] * BASE[0] * BASE[1])
        self.first = _GatedNorm(2 * widths[0], cond_dim)
        self.ups = nn.ModuleList(_UpBlock(widths[k], widths[k + 1], cond_dim, 2 if k % 2 == 0 else 1)
                                 for k in range(n))
        # The 4x6 and 8x12 maps excite the maps three scales finer, where there are such.
        self.excite = nn.ModuleDict({str(k + 3): _Excitation(widths[k], widths[k + 3]) for k in (0, 1) if k + 3 <= n})
        self.to_rgb = spectral_norm(nn.Conv2d(widths[-1], 3, 3, 1, 1))

    def forward(self, z: torch.Tensor, genres: torch.Tensor, decades: torch.Tensor,
                strength: float = 1.0) -> torch.Tensor:
        cond = condition_vector(self.embed, genres, decades, strength) if self.conditional else None
        x = self.project(torch.cat([z, cond], 1) if self.conditional else z)
        x = self.first(x.view(len(z), -1, BASE[1], BASE[0]), cond)
        maps = [x]
        for k, up in enumerate(self.ups, start=1):
            x = up(x, cond)
            if str(k) in self.excite:
                x = self.excite[str(k)](maps[k - 3], x)
            maps.append(x)
        return torch.tanh(self.to_rgb(x))
