"""`load_renderer`: a GAN run's EMA generator as `lab.generation.sampling` uses it."""

from __future__ import annotations

from pathlib import Path

import torch

from lab.errors import LabError
from lab.gan.networks import CHECKPOINTS, SAMPLING_WEIGHTS, build_generator, load_gan_info
from lab.generation.run_info import load_for_sampling
from lab.generation.samples import to_uint8
from lab.generation.sampling import Renderer
from lab.runs import Run


def load_renderer(run_dir: Path, **settings) -> Renderer:
    """A GAN takes no sampling settings: --steps, --guidance, --genre-guidance and --sampler are for diffusion
    runs."""
    given = [f"--{name.replace('_', '-')}" for name, value in settings.items() if value is not None]
    if given:
        raise LabError(f"{', '.join(given)}: for diffusion runs only; {run_dir} is a GAN run")
    info = load_gan_info(run_dir)
    weights = f"{CHECKPOINTS}/{SAMPLING_WEIGHTS}.safetensors"
    generator, _, step = load_for_sampling(build_generator(info), Path(run_dir) / weights)

    @torch.no_grad()
    def render(z: torch.Tensor, genres: torch.Tensor, decades: torch.Tensor):
        return to_uint8(generator(z, genres, decades))

    options = Run.open(run_dir).options  # a classifier that steered G in training steered its samples too
    steered = {"classifier": str(Path(options["steer"]).resolve()), "lever": "steer_weight",
               "steer_weight": options["steer_weight"]} if options.get("steer") else None
    return Renderer(info, (info["model"]["z_dim"],), render, info["model"]["conditional"],
                    {"checkpoint": weights, "step": step}, trained_steered_by=steered)
