"""A diffusion run's denoiser, built from its run file (diffusion.json), and where its weights are kept.

Both the trainer and the sampler read this; neither reads the other.
"""

from __future__ import annotations

from pathlib import Path

from lab.diffusion.model import PosterDenoiser
from lab.generation.run_info import read_info
from lab.kinds import get

RUN_FILE = get("diffusion").run_file
CHECKPOINTS = "checkpoints"
NET, EMA = "denoiser", "denoiser_ema"  # the weights files (and their keys in state.pt)


def build_model(info: dict) -> PosterDenoiser:
    cfg = info["model"]
    return PosterDenoiser(tuple(info["size"]), len(info["genres"]), len(info["decades"]), channels=cfg["channels"],
                          multipliers=tuple(cfg["multipliers"]), layers_per_block=cfg["layers_per_block"],
                          attention=cfg["attention"], genre_free=cfg.get("genre_free", False))


def load_diffusion_info(run_dir: Path) -> dict:
    return read_info(run_dir, RUN_FILE, "diffusion")


