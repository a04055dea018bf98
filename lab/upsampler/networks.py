"""An upsampler run's network, built from its run file (upsampler.json), and where its weights are kept."""

from __future__ import annotations

from pathlib import Path

from lab.generation.run_info import read_info
from lab.kinds import get
from lab.upsampler.model import PosterUpsampler

RUN_FILE = get("upsampler").run_file
CHECKPOINTS = "checkpoints"
NET, EMA = "upsampler", "upsampler_ema"


def build_model(info: dict) -> PosterUpsampler:
    return PosterUpsampler(info["model"]["channels"], info["model"]["blocks"])


def load_upsampler_info(run_dir: Path) -> dict:
    return read_info(run_dir, RUN_FILE, "upsampler")


