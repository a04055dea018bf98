"""The GAN's losses: hinge for realism, the auxiliary classifier's for the condition, mode seeking for variety,
and the detector of a discriminator that has won outright."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def d_hinge(scores: torch.Tensor, n_real: int) -> torch.Tensor:
    """D's hinge loss on scores of (n_real real, then fake) posters, each score (per poster or per location)."""
    return F.relu(1 - scores[:n_real]).mean() + F.relu(1 + scores[n_real:]).mean()


def class_loss(logits: torch.Tensor, genres: torch.Tensor, decades: torch.Tensor) -> torch.Tensor:
    """How badly an auxiliary classifier names the condition from its logits (B, G + D): genre BCE plus
    decade cross-entropy."""
    logits = logits.float()
    n_genres = genres.shape[1]
    return (F.binary_cross_entropy_with_logits(logits[:, :n_genres], genres)
            + F.cross_entropy(logits[:, n_genres:], decades))


def total(terms: list[torch.Tensor]) -> torch.Tensor:
    """The sum of each discriminator's term (exactly the term itself where there is one)."""
    return terms[0] if len(terms) == 1 else torch.stack(terms).sum()


def spread(fake: torch.Tensor, z: torch.Tensor, m: int) -> torch.Tensor:
    """How far apart posters of the same condition are per unit of noise: images k and k + m share one."""
    pairs = len(z) - m
    if pairs < 1:
        return torch.ones((), device=z.device)
    return ((fake[:pairs] - fake[m:]).abs().mean() / (z[:pairs] - z[m:]).abs().mean().clamp(min=1e-5)).float()


class DWinDetector:
    """D winning completely: its smoothed hinge loss below `loss` for `steps` steps. Everything stays on the
    device; `collapsed_at` is the first step the streak reached `steps` (0: never)."""

    def __init__(self, loss: float, steps: int, device):
        self.loss, self.steps = loss, steps
        self.d_loss_ema = torch.tensor(1.0, device=device)
        self.streak = torch.tensor(0.0, device=device)
        self.collapsed_at = torch.zeros((), device=device)

    def update(self, d_loss: torch.Tensor, step: int) -> None:
        self.d_loss_ema = 0.98 * self.d_loss_ema + 0.02 * d_loss
        self.streak = (self.streak + 1) * (self.d_loss_ema < self.loss)
        self.collapsed_at = torch.where((self.collapsed_at == 0) & (self.streak >= self.steps), float(step + 1),
                                        self.collapsed_at)

    def state(self) -> dict:
        return {"d_loss_ema": self.d_loss_ema.item(), "d_win_streak": int(self.streak.item())}

    def load_state(self, saved: dict) -> None:
        self.d_loss_ema.fill_(float(saved.get("d_loss_ema", 1.0)))
        self.streak.fill_(float(saved.get("d_win_streak", 0)))
