"""A conditional denoiser for posters: a diffusers UNet2DModel at the poster's 2:3 size.

The condition (genres multi-hot, decade index) is embedded into one vector of the UNet's time
embedding width and added to the time embedding (`class_embed_type="identity"` hands our vector to
the UNet as is), so every residual block sees "a Horror poster from the 1980s" at every noise level.
Where the condition is dropped (a share of training steps, and the unconditional half of
classifier-free guidance) a learnt "no condition" vector stands in for it. A model trained with its genres
dropped alone too (`genre_free`) also has a learnt "no genre" vector, so it can be asked for a decade
without genres, and genre and decade get guidance scales of their own.
"""

from __future__ import annotations

import math

import torch
from diffusers import UNet2DModel
from torch import nn


def check_size(size: tuple[int, int], levels: int) -> None:
    """The UNet halves the poster `levels - 1` times: its sides must divide evenly, at 2:3."""
    w, h = size
    step = 2 ** (levels - 1)
    if 3 * w != 2 * h or w % step or h % step:
        raise ValueError(f"diffusion size must be 2:3 with both sides divisible by {step} (for {levels} UNet levels): "
                         f"32x48, 64x96, 128x192, ..., not {w}x{h}")


class ConditionEmbedding(nn.Module):
    """Genres (multi-hot, averaged) plus decade as one vector; a learnt vector where the condition is dropped,
    and with `genre_free` another where only the genres are."""

    def __init__(self, n_genres: int, n_decades: int, dim: int, genre_free: bool = False):
        super().__init__()
        self.genres = nn.Linear(n_genres, dim, bias=False)
        self.decades = nn.Embedding(n_decades, dim)
        self.unconditioned = nn.Parameter(torch.zeros(dim))
        self.no_genre = nn.Parameter(torch.zeros(dim)) if genre_free else None
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, genres: torch.Tensor, decades: torch.Tensor, keep: torch.Tensor,
                keep_genres: torch.Tensor | None = None) -> torch.Tensor:
        """`keep` (B,) bool: False where the model is to denoise without knowing the condition; `keep_genres`
        (B,) bool, for a `genre_free` embedding: False where it is to know the decade alone."""
        share = genres / genres.sum(1, keepdim=True).clamp(min=1)
        genre_part = self.genres(share)
        if keep_genres is not None:
            if self.no_genre is None:
                raise ValueError("this model was not trained to do without the genres alone (genre_dropout)")
            genre_part = torch.where(keep_genres[:, None], genre_part, self.no_genre.to(genre_part.dtype))
        cond = genre_part + self.decades(decades)
        return self.mlp(torch.where(keep[:, None], cond, self.unconditioned.to(cond.dtype)))


class PosterDenoiser(nn.Module):
    """Predicts the noise (or the velocity) in a noisy poster, given its noise level and condition."""

    def __init__(self, size: tuple[int, int], n_genres: int, n_decades: int, *, channels: int = 64,
                 multipliers: tuple[int, ...] = (1, 2, 2, 2), layers_per_block: int = 2, attention: bool = True,
                 genre_free: bool = False):
        super().__init__()
        check_size(size, len(multipliers))
        w, h = size
        levels = len(multipliers)
        # Self-attention at the coarsest level only: where it is cheap and where layout is decided.
        down = tuple("AttnDownBlock2D" if attention and k == levels - 1 else "DownBlock2D" for k in range(levels))
        up = tuple(name.replace("Down", "Up") for name in reversed(down))
        widths = tuple(channels * m for m in multipliers)
        self.unet = UNet2DModel(sample_size=(h, w), block_out_channels=widths, down_block_types=down,
                                up_block_types=up, layers_per_block=layers_per_block,
                                norm_num_groups=math.gcd(channels // 4, 32), attention_head_dim=widths[-1],
                                add_attention=attention, class_embed_type="identity")
        self.condition = ConditionEmbedding(n_genres, n_decades, self.unet.time_embedding.linear_2.out_features,
                                            genre_free)

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, genres: torch.Tensor, decades: torch.Tensor,
                keep: torch.Tensor, keep_genres: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, H, W) prediction for (B, 3, H, W) noisy posters at `timesteps` (B,) or one scalar."""
        return self.unet(noisy, timesteps, class_labels=self.condition(genres, decades, keep, keep_genres)).sample
