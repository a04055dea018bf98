"""GenreClassifier: an image backbone with a multi-label genre head and a decade head."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from lab.errors import LabError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SCRATCH_CNN = "cnn4"  # the earlier Keras poster project's small CNN, trained from scratch


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
    """A torchvision classification model without its last linear layer, and its feature width.

    `weights` names torchvision weights (e.g. IMAGENET1K_V1); None trains from scratch.
    """
    if name == SCRATCH_CNN:
        net = SmallCNN()
        return net, net.out_features
    if name not in torchvision.models.list_models(module=torchvision.models):
        raise LabError(f"unknown backbone {name!r}: use {SCRATCH_CNN} or a torchvision classification model "
                       "such as mobilenet_v2, resnet18, efficientnet_b0")
    if weights is not None:
        _check_weights_reachable(name, weights)
    try:
        net = torchvision.models.get_model(name, weights=weights)
    except Exception as e:  # the download of missing weights fails in many ways offline
        raise LabError(f"cannot load {weights} weights for {name}: {str(e).splitlines()[0]}; "
                       f"{_weights_hint(name, weights)}") from None
    last = _last_linear(net)
    width = last[1].in_features
    _replace(net, last[0], nn.Identity())
    return net, width


def _weights_file(name: str, weights: str) -> Path:
    available = torchvision.models.get_model_weights(name)
    if weights not in available.__members__:
        raise LabError(f"{name} has no weights {weights!r}; it has: {', '.join(available.__members__)}")
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(available[weights].url)


def _weights_hint(name: str, weights: str) -> str:
    path = _weights_file(name, weights)
    return (f"put {path.name} in {path.parent} (set TORCH_HOME to the folder that holds hub/checkpoints, "
            "e.g. TORCH_HOME=../shared/torch-home), or pass --no-pretrained")


def _check_weights_reachable(name: str, weights: str) -> None:
    """Fail at once, not after a network timeout, when weights are neither cached nor downloadable."""
    if _weights_file(name, weights).is_file() or os.environ.get("LAB_ALLOW_DOWNLOAD") == "1":
        return
    raise LabError(f"the {weights} weights for {name} are not cached; {_weights_hint(name, weights)} "
                   "(or set LAB_ALLOW_DOWNLOAD=1 where a download can work)")


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


class GenreClassifier(nn.Module):
    """uint8-range images in, (genre logits (B, G), decade logits (B, D)) out.

    `taps` names backbone blocks (indices into `backbone_blocks`) whose globally pooled outputs join
    the last features: genre lives in colour, type and layout as much as in ImageNet's objects, and
    those are read at every depth.
    """

    def __init__(self, backbone: str, n_genres: int, n_decades: int, weights: str | None = None,
                 dropout: float = 0.2, taps: tuple[int, ...] = ()):
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
        self.dropout = nn.Dropout(dropout)
        self.genre_head = nn.Linear(width, n_genres)
        self.decade_head = nn.Linear(width, n_decades)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.to(memory_format=torch.channels_last)  # 2-4x faster convolutions on CPU

    def _keep(self, module, inputs, output):
        self._tapped.append(output)

    def _pooled(self, last: torch.Tensor) -> torch.Tensor:
        tapped, self._tapped = self._tapped, []
        return torch.cat([t.float().mean((2, 3)) for t in tapped] + [last.float()], 1) if tapped else last

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features of images given as uint8 or floats in [0, 255]."""
        x = (images.float() / 255 - self.mean) / self.std
        self._tapped = []  # nothing left from a forward pass that did not end here
        return self._pooled(self.backbone(x.contiguous(memory_format=torch.channels_last)))

    def forward(self, images: torch.Tensor):
        h = self.dropout(self.features(images))
        return self.genre_head(h), self.decade_head(h)

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
