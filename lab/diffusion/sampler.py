"""The noise schedule a run trains with, and the samplers that turn noise into posters with it.

Training adds noise with a DDPMScheduler (cosine schedule). Sampling runs a deterministic ODE
sampler over a few of its steps, DDIM or DPM-Solver++, with classifier-free guidance: the model is
asked with and without the condition, and the answer is pushed `guidance` times the difference
away from the unconditioned one (1: the plain conditional model; 0: the unconditional one).
"""

from __future__ import annotations

import math

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from torch import nn

from lab.diffusion.options import SAMPLERS
from lab.errors import LabError

MAX_GUIDANCE = 20.0


def training_scheduler(config: dict) -> DDPMScheduler:
    return DDPMScheduler(**config, clip_sample=False)


def check_sampling(sampler: str, steps: int, guidance: float, config: dict) -> None:
    """One-line errors for sampling settings that cannot work."""
    if sampler not in SAMPLERS:
        raise LabError(f"--sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
    most = config["num_train_timesteps"]
    if not 1 <= steps <= most:
        raise LabError(f"--steps must be between 1 and {most} (the run's training noise levels), not {steps}")
    if not (math.isfinite(guidance) and 0 <= guidance <= MAX_GUIDANCE):
        raise LabError(f"--guidance must be between 0 (unconditional) and {MAX_GUIDANCE:g}, not {guidance}; "
                       "1 is the plain conditional model, more follows the condition harder")


def make_sampler(sampler: str, steps: int, config: dict):
    """A fresh scheduler (they keep state while sampling) set to `steps` steps from pure noise to a poster.

    'trailing' spacing starts at the last training noise level, so few steps still start from noise;
    predicted clean posters are clipped to the pixel range, as suits a pixel-space model.
    """
    if sampler == "ddim":
        scheduler = DDIMScheduler(**config, clip_sample=True, timestep_spacing="trailing")
    else:
        scheduler = DPMSolverMultistepScheduler(**config, algorithm_type="dpmsolver++", solver_order=2,
                                                thresholding=True, sample_max_value=1.0,
                                                timestep_spacing="trailing")
    scheduler.set_timesteps(steps)
    return scheduler


@torch.no_grad()
def denoise(model: nn.Module, scheduler, noise: torch.Tensor, genres: torch.Tensor, decades: torch.Tensor,
            guidance: float) -> torch.Tensor:
    """Posters in [-1, 1] from `noise` (B, 3, H, W) for conditions (genres (B, G), decades (B,))."""
    b = len(noise)
    both = guidance not in (0, 1)  # otherwise one pass: the conditional or the unconditional model alone
    if both:
        genres, decades = torch.cat([genres, genres]), torch.cat([decades, decades])
        keep = torch.arange(2 * b, device=noise.device) < b
    else:
        keep = torch.full((b,), guidance == 1, device=noise.device)
    x = noise * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        x_in = scheduler.scale_model_input(x, t)
        out = model(torch.cat([x_in, x_in]) if both else x_in, t.to(noise.device), genres, decades, keep).float()
        if both:
            cond, uncond = out.chunk(2)
            out = uncond + guidance * (cond - uncond)
        x = scheduler.step(out, t, x).prev_sample
    return x.clamp(-1, 1)
