"""Ensemble: classifiers read together, each at its own size and with its own test-time views, their
probabilities averaged with weights. It predicts like one `GenreClassifier`, so whatever reads a
classifier (evaluate, predict, score-samples --judge, the app) reads an ensemble the same way."""

from __future__ import annotations

import torch
from torch import nn

from lab.classifier.model import GenreClassifier
from lab.classifier.views import resized, view_batches


class Ensemble(nn.Module):
    """`members` with the size (W, H) each reads posters at, its views (lab.classifier.views) and its weight."""

    def __init__(self, members: list[GenreClassifier], sizes: list[tuple[int, int]], views: list[tuple[str, ...]],
                 weights: list[float]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.sizes, self.views = [tuple(s) for s in sizes], [tuple(v) for v in views]
        self.weights = [w / sum(weights) for w in weights]

    @property
    def n_genres(self) -> int:
        return self.members[0].n_genres

    @property
    def n_decades(self) -> int:
        return self.members[0].n_decades

    @torch.no_grad()
    def member_views(self, k: int, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        """Member k's `predict` on posters of any size, resized to its own, for each of its views apart: every
        figure (B, views, ...), the views in `view_names` order. A member's extra networks read the poster itself
        under every view, as they did its augmented copies in training."""
        member, images = self.members[k], resized(images, self.sizes[k])
        extra = member.extra(images) if member.extra is not None else None
        seen = [member.predict(view, labels, extra) for view in view_batches(images, self.views[k])]
        return {key: torch.stack([s[key].float() for s in seen], 1) for key in seen[0]}

    def member_predict(self, k: int, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        """`member_views` averaged over the views."""
        return {key: value.mean(1) for key, value in self.member_views(k, images, labels).items()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """`GenreClassifier.predict`'s figures, the members' weighted mean (`weighted_mean`)."""
        kept = [k for k, w in enumerate(self.weights) if w > 0]
        return weighted_mean([self.member_predict(k, images, labels) for k in kept], [self.weights[k] for k in kept])


class MemberViews(Ensemble):
    """One classifier reading posters at `size` under each of `views` apart (`predict`'s figures are (B, views,
    ...)), so that the readings of every combination of those views are averages of one pass."""

    def __init__(self, member: GenreClassifier, size: tuple[int, int], views: tuple[str, ...]):
        super().__init__([member], [size], [views], [1.0])

    @torch.no_grad()
    def predict(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return self.member_views(0, images, labels)


def weighted_mean(predictions: list[dict], weights: list[float]) -> dict:
    """Each figure of the members' predictions (tensors or arrays) averaged with `weights`; a figure that only
    some members give (the rating, from members with a rating head) over those members, their weights renormalised."""
    sums, totals = {}, {}
    for prediction, weight in zip(predictions, weights):
        for key, value in prediction.items():
            sums[key] = sums.get(key, 0) + weight * value
            totals[key] = totals.get(key, 0.0) + weight
    return {key: value / totals[key] for key, value in sums.items()}
