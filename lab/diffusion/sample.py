"""`load_renderer`: a diffusion run's EMA denoiser and a sampler, as `lab.generation.sampling` uses them."""

from __future__ import annotations

from pathlib import Path

import torch

from lab.diffusion.networks import CHECKPOINTS, EMA, build_model, load_diffusion_info
from lab.diffusion.options import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS
from lab.diffusion.sampler import check_sampling, denoise, make_sampler
from lab.generation.run_info import load_for_sampling
from lab.generation.samples import to_uint8
from lab.generation.sampling import Renderer


def load_renderer(run_dir: Path, *, steps: int | None = None, guidance: float | None = None,
                  sampler: str | None = None, genre_guidance: float | None = None) -> Renderer:
    """`steps`, `guidance` and `sampler` default to the best measured (lab.diffusion.sampler); `genre_guidance`,
    for a run trained with genre_dropout, gives the genres a guidance of their own (`guidance` is then the
    decade's)."""
    info = load_diffusion_info(run_dir)
    steps = DEFAULT_STEPS if steps is None else steps
    guidance = DEFAULT_GUIDANCE if guidance is None else guidance
    sampler = sampler or DEFAULT_SAMPLER
    schedule = info["model"]["schedule"]
    check_sampling(sampler, steps, guidance, schedule, genre_guidance, info["model"].get("genre_free", False))
    weights = f"{CHECKPOINTS}/{EMA}.safetensors"
    model, _, step = load_for_sampling(build_model(info), Path(run_dir) / weights)
    width, height = info["size"]

    def render(noise: torch.Tensor, genres: torch.Tensor, decades: torch.Tensor, guide=None):
        return to_uint8(denoise(model, make_sampler(sampler, steps, schedule), noise, genres, decades, guidance,
                                guide, genre_guidance))

    return Renderer(info, (3, height, width), render, True, guided=True,
                    summary={"checkpoint": weights, "step": step, "sampler": sampler, "steps": steps, "guidance": guidance,
                             **({"genre_guidance": genre_guidance} if genre_guidance is not None else {})})
