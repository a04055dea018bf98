"""The noise schedule a run trains with, and the samplers that turn noise into posters with it.

Training adds noise with a DDPMScheduler (cosine schedule). Sampling runs a deterministic ODE
sampler over a few of its steps, DDIM or DPM-Solver++, with classifier-free guidance: the model is
asked with and without the condition, and the answer is pushed `guidance` times the difference
away from the unconditioned one (1: the plain conditional model; 0: the unconditional one). A model trained
to do without its genres alone takes a genre guidance of its own, and a classifier can steer it too
(classifier guidance); `denoise` says how.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from torch import nn

from lab.diffusion.options import SAMPLERS
from lab.errors import LabError

MAX_GUIDANCE = 20.0


def training_scheduler(config: dict) -> DDPMScheduler:
    return DDPMScheduler(**config, clip_sample=False)


def check_sampling(sampler: str, steps: int, guidance: float, config: dict, genre_guidance: float | None = None,
                   genre_free: bool = False) -> None:
    """One-line errors for sampling settings that cannot work."""
    if sampler not in SAMPLERS:
        raise LabError(f"--sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
    most = config["num_train_timesteps"]
    if not 1 <= steps <= most:
        raise LabError(f"--steps must be between 1 and {most} (the run's training noise levels), not {steps}")
    if not (math.isfinite(guidance) and 0 <= guidance <= MAX_GUIDANCE):
        raise LabError(f"--guidance must be between 0 (unconditional) and {MAX_GUIDANCE:g}, not {guidance}; "
                       "1 is the plain conditional model, more follows the condition harder")
    if genre_guidance is not None:
        if not genre_free:
            raise LabError("--genre-guidance needs a diffusion run trained with genre_dropout above 0 (this one drops "
                           "genres and decade together, so they share --guidance)")
        if not (math.isfinite(genre_guidance) and 0 <= genre_guidance <= MAX_GUIDANCE):
            raise LabError(f"--genre-guidance must be between 0 and {MAX_GUIDANCE:g}, not {genre_guidance}")


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
            guidance: float, guide: Callable[[torch.Tensor], torch.Tensor] | None = None,
            genre_guidance: float | None = None) -> torch.Tensor:
    """Posters in [-1, 1] from `noise` (B, 3, H, W) for conditions (genres (B, G), decades (B,)).

    `genre_guidance` (a model trained with genre_dropout): the genres get a guidance scale of their own, and
    `guidance` is then the decade's: e(none) + guidance [e(decade) - e(none)] + genre_guidance [e(genres,
    decade) - e(decade)], three passes a step. Equal scales give classifier-free guidance as it is.
    `guide` (classifier guidance, lab.generation.steering): a function from the predicted clean posters to a
    step to add to them, times the noise level's sigma. The prediction handed to the scheduler is then the one
    that predicts the moved clean posters, so the scheduler's own update carries the step."""
    b, device = len(noise), noise.device
    if genre_guidance is not None:  # the rows: the full condition, the decade alone, nothing
        passes, keep = 3, torch.arange(3 * b, device=device) < 2 * b
        keep_genres = torch.arange(3 * b, device=device) < b
    elif guidance not in (0, 1):  # the full condition, nothing
        passes, keep, keep_genres = 2, torch.arange(2 * b, device=device) < b, None
    else:  # one pass: the conditional or the unconditional model alone
        passes, keep, keep_genres = 1, torch.full((b,), guidance == 1, device=device), None
    genres, decades = genres.repeat(passes, 1), decades.repeat(passes)
    extra = {} if keep_genres is None else {"keep_genres": keep_genres}
    x = noise * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        x_in = scheduler.scale_model_input(x, t)
        out = model(x_in.repeat(passes, 1, 1, 1), t.to(device), genres, decades, keep, **extra).float()
        if passes == 3:
            full, decade, none = out.chunk(3)
            out = none + guidance * (decade - none) + genre_guidance * (full - decade)
        elif passes == 2:
            cond, uncond = out.chunk(2)
            out = uncond + guidance * (cond - uncond)
        if guide is not None:
            out = _guided(out, x_in, t, scheduler, guide)
        x = scheduler.step(out, t, x).prev_sample
    return x.clamp(-1, 1)


def _guided(out: torch.Tensor, x: torch.Tensor, t: torch.Tensor, scheduler,
            guide: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """The model's prediction (noise or velocity) at `x`, noise level `t`, made to predict the clean poster
    x0 + sigma_t * guide(x0) instead of its own x0."""
    cumulative = scheduler.alphas_cumprod[int(t)].to(x.device, torch.float32)
    alpha, sigma = cumulative.sqrt(), (1 - cumulative).sqrt()
    velocity = scheduler.config.prediction_type == "v_prediction"
    clean = alpha * x - sigma * out if velocity else (x - sigma * out) / alpha
    clean = clean + sigma ** 2 * guide(clean)
    noise = (x - alpha * clean) / sigma
    return alpha * noise - sigma * clean if velocity else noise
