"""`sample_run`: posters from a GAN run's EMA generator, for chosen genres and decades."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lab.gan.train import CHECKPOINTS, build_models, load_gan_info
from lab.generation.condition import Condition, condition_tensors, parse_conditions
from lab.generation.run_info import load_for_sampling
from lab.generation.samples import default_samples_dir, to_uint8, write_samples


def sample_run(run_dir: Path, genres: list[str] | None, decades: list[str] | None, n: int, seed: int,
               out: Path | None = None, batch_size: int = 64) -> tuple[Path, dict]:
    """Write n PNGs per condition, grid.png and samples.json; the same seed gives the same images."""
    run_dir = Path(run_dir)
    info = load_gan_info(run_dir)
    flt = info["filter"]
    conditions = parse_conditions(genres or flt["genres"], decades or [str(d) for d in flt["decades"]],
                                  info["genres_seen"], info["decades_seen"])
    generator, device, step = load_for_sampling(build_models(info)[0], run_dir / CHECKPOINTS / "g_ema.safetensors")
    out = Path(out) if out else default_samples_dir(run_dir, conditions, seed)
    # The same noise for every condition: rows of the grid differ only by what was asked for. An
    # unconditional generator ignores the condition, so there each condition draws noise of its own,
    # or its conditions would repeat the same posters (and score as a set of duplicates).
    conditional = info["model"]["conditional"]
    z = torch.randn(n * (1 if conditional else len(conditions)), info["model"]["z_dim"],
                    generator=torch.Generator().manual_seed(seed))

    def generate(k_condition: int, condition: Condition) -> np.ndarray:
        y, d = condition_tensors([condition], info["genres"], info["decades"], device)
        z_condition = z if conditional else z[k_condition * n:(k_condition + 1) * n]
        batches = []
        for start in range(0, n, batch_size):
            zb = z_condition[start:start + batch_size].to(device)
            with torch.no_grad():
                batches.append(to_uint8(generator(zb, y.expand(len(zb), -1), d.expand(len(zb)))))
        return np.concatenate(batches)

    summary = write_samples(out, conditions, n, generate, {
        "run": str(run_dir.resolve()), "checkpoint": f"{CHECKPOINTS}/g_ema.safetensors", "step": step,
        "seed": seed, "conditional": conditional, "size": info["size"]})
    return out, summary
