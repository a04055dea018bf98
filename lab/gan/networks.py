"""A GAN run's networks, built from its run file (gan.json), and where their weights are kept.

Both the trainer and the sampler read this; neither reads the other.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lab.gan.model import Discriminator, Generator
from lab.generation.run_info import read_info
from lab.kinds import get

RUN_FILE = get("gan").run_file
CHECKPOINTS = "checkpoints"
SAMPLING_WEIGHTS = "g_ema"


def build_generator(info: dict) -> torch.nn.Module:
    cfg = info["model"]
    make = Generator
    if cfg.get("generator", "dcgan") == "fastgan":
        from lab.gan.fastgan import FastGenerator as make
    g = make(tuple(info["size"]), len(info["genres"]), len(info["decades"]), z_dim=cfg["z_dim"],
             channels=cfg["channels"], conditional=cfg["conditional"])
    # channels_last convolutions are markedly faster on CPU, and no slower on GPU.
    return g.to(memory_format=torch.channels_last)


def build_discriminators(info: dict) -> dict[str, torch.nn.Module]:
    """The run's judges by checkpoint name: "d" (the lab's D) and/or "d_projected"."""
    cfg, size = info["model"], tuple(info["size"])
    kind = cfg.get("discriminator", "dcgan")
    judges = {}
    if kind in ("dcgan", "both"):
        judges["d"] = Discriminator(size, len(info["genres"]), len(info["decades"]), channels=cfg["channels"],
                                    conditional=cfg["conditional"])
    if kind in ("projected", "both"):
        from lab.gan.projected import ProjectedDiscriminator
        judges["d_projected"] = ProjectedDiscriminator(len(info["genres"]), len(info["decades"]),
                                                       width=cfg["projected_width"], conditional=cfg["conditional"])
    return {name: d.to(memory_format=torch.channels_last) for name, d in judges.items()}


def load_gan_info(run_dir: Path) -> dict:
    return read_info(run_dir, RUN_FILE, "GAN")


