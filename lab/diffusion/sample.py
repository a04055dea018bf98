"""`sample_run`: posters from a diffusion run's EMA denoiser, for chosen genres and decades."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lab.diffusion.sampler import (DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS, check_sampling, denoise,
                                   make_sampler)
from lab.diffusion.train import CHECKPOINTS, EMA, build_model, load_diffusion_info
from lab.generation.condition import Condition, condition_tensors, parse_conditions
from lab.generation.run_info import load_for_sampling
from lab.generation.samples import default_samples_dir, to_uint8, write_samples


def sample_run(run_dir: Path, genres: list[str] | None, decades: list[str] | None, n: int, seed: int,
               out: Path | None = None, *, steps: int | None = None, guidance: float | None = None,
               sampler: str | None = None, batch_size: int = 64) -> tuple[Path, dict]:
    """Write n PNGs per condition, grid.png and samples.json; the same seed (and settings) gives the same images.

    `steps`, `guidance` and `sampler` default to the best measured (lab.diffusion.sampler).
    """
    run_dir = Path(run_dir)
    info = load_diffusion_info(run_dir)
    steps = DEFAULT_STEPS if steps is None else steps
    guidance = DEFAULT_GUIDANCE if guidance is None else guidance
    sampler = sampler or DEFAULT_SAMPLER
    schedule = info["model"]["schedule"]
    check_sampling(sampler, steps, guidance, schedule)
    flt = info["filter"]
    conditions = parse_conditions(genres or flt["genres"], decades or [str(d) for d in flt["decades"]],
                                  info["genres_seen"], info["decades_seen"])
    model, device, step = load_for_sampling(build_model(info), run_dir / CHECKPOINTS / f"{EMA}.safetensors")
    out = Path(out) if out else default_samples_dir(run_dir, conditions, seed)
    # The same noise for every condition: rows of the grid differ only by what was asked for.
    width, height = info["size"]
    noise = torch.randn(n, 3, height, width, generator=torch.Generator().manual_seed(seed))

    def generate(k_condition: int, condition: Condition) -> np.ndarray:
        y, d = condition_tensors([condition], info["genres"], info["decades"], device)
        batches = []
        for start in range(0, n, batch_size):
            xb = noise[start:start + batch_size].to(device)
            posters = denoise(model, make_sampler(sampler, steps, schedule), xb, y.expand(len(xb), -1),
                              d.expand(len(xb)), guidance)
            batches.append(to_uint8(posters))
        return np.concatenate(batches)

    summary = write_samples(out, conditions, n, generate, {
        "run": str(run_dir.resolve()), "checkpoint": f"{CHECKPOINTS}/{EMA}.safetensors", "step": step,
        "seed": seed, "conditional": True, "size": info["size"], "sampler": sampler, "steps": steps,
        "guidance": guidance})
    return out, summary
