"""`load_enlarger`: an upsampler run's EMA weights as a function on uint8 posters, for `lab sample --upsampler`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from lab.errors import LabError
from lab.generation.run_info import load_for_sampling
from lab.generation.samples import to_uint8
from lab.upsampler.networks import CHECKPOINTS, EMA, build_model, load_upsampler_info


def load_enlarger(run_dir: Path, small_size: tuple[int, int]) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
    """(uint8 (B, h, w, 3) -> uint8 (B, 2h, 2w, 3), what to record of it in samples.json). Posters of another
    size than the upsampler's input are a one-line error."""
    info = load_upsampler_info(run_dir)
    w, h = info["size"]
    if tuple(small_size) != (w // 2, h // 2):
        raise LabError(f"--upsampler {run_dir} makes {w}x{h} posters from {w // 2}x{h // 2} ones; this generator "
                       f"makes {small_size[0]}x{small_size[1]}")
    model, device, step = load_for_sampling(build_model(info), Path(run_dir) / CHECKPOINTS / f"{EMA}.safetensors")

    @torch.no_grad()
    def enlarge(images: np.ndarray) -> np.ndarray:
        small = torch.from_numpy(images).permute(0, 3, 1, 2).float().to(device) / 127.5 - 1
        return to_uint8(model(small))

    return enlarge, {"upsampler": str(Path(run_dir).resolve()), "upsampler_step": step}
