"""`train_diffusion`: the conditional poster diffusion model's step, in the generator harness.

Each step takes a batch of posters, a noise level and Gaussian noise per poster, and teaches the
denoiser to predict the velocity (v) or the noise (epsilon) of the noisy posters; a share of the
posters loses its condition, so that one model is conditional and unconditional at once and
classifier-free guidance works; with `genre_dropout`, another share loses its genres alone. The grids are sampled from the weight average.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lab.diffusion.networks import build_model
from lab.diffusion.options import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DiffusionOptions, model_config
from lab.diffusion.sampler import denoise, make_sampler, training_scheduler
from lab.generation.harness import Trainee, grid_conditions, grid_noise, train_generator
from lab.generation.samples import GRID_COLUMNS
from lab.kinds import get
from lab.runs import Run
from lab.training import WeightAverage


class DiffusionTrainee(Trainee):
    def __init__(self, opts: DiffusionOptions, info: dict, posters, device):
        self.opts, self.schedule = opts, info["model"]["schedule"]
        model = build_model(info)
        self.networks = {"denoiser": model}
        self.averages = {"denoiser_ema": WeightAverage(model)}  # follows the model to accelerate's device
        self.optimizers = {"opt": torch.optim.Adam(model.parameters(), lr=opts.lr)}
        self.noise_schedule = training_scheduler(self.schedule)
        # On the device, so that add_noise and get_velocity stay there.
        self.noise_schedule.alphas_cumprod = self.alphas = self.noise_schedule.alphas_cumprod.to(device)
        self.grid_y, self.grid_d = grid_conditions(info, device)
        width, height = info["size"]
        self.grid_noise = grid_noise(opts, (3, height, width), device)

    def prepare(self, accelerator) -> None:
        self.model, optimizer = accelerator.prepare(self.networks["denoiser"], self.optimizers["opt"])
        self.optimizers = {"opt": optimizer}

    def step(self, data, rng, step, accelerator) -> torch.Tensor:
        opts, device, per_process = self.opts, data.images.device, data.per_process
        _, _, height, width = data.images.shape
        idx = torch.randint(len(data.images), (per_process,), generator=rng).to(device, non_blocking=True)
        t = torch.randint(self.noise_schedule.config.num_train_timesteps, (per_process,), generator=rng)
        t = t.to(device, non_blocking=True)
        noise = torch.randn(per_process, 3, height, width, generator=rng).to(device, non_blocking=True)
        keep = (torch.rand(per_process, generator=rng) >= opts.condition_dropout).to(device, non_blocking=True)
        keep_genres = None  # drawn only where asked, so that other runs' draws stay as they were
        if opts.genre_dropout:
            keep_genres = (torch.rand(per_process, generator=rng) >= opts.genre_dropout).to(device, non_blocking=True)
        clean = data.images[idx].float() / 127.5 - 1
        noisy = self.noise_schedule.add_noise(clean, noise, t)
        target = self.noise_schedule.get_velocity(clean, noise, t) if opts.prediction == "v" else noise
        predicted = self.model(noisy, t, data.genres[idx], data.decades[idx], keep, keep_genres).float()
        if opts.min_snr_gamma:
            snr = self.alphas[t] / (1 - self.alphas[t])
            weight = snr.clamp(max=opts.min_snr_gamma) / (snr + 1 if opts.prediction == "v" else snr)
            loss = (weight * ((predicted - target) ** 2).mean(dim=(1, 2, 3))).mean()
        else:
            loss = F.mse_loss(predicted, target)
        optimizer = self.optimizers["opt"]
        for group in optimizer.param_groups:  # a function of the step alone, so a resume repeats it
            group["lr"] = opts.lr * min(1.0, (step + 1) / max(1, opts.warmup_steps))
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        if opts.grad_clip > 0:
            accelerator.clip_grad_norm_(self.model.parameters(), opts.grad_clip)
        optimizer.step()
        return accelerator.reduce(loss.detach().float(), "mean").view(1)

    def log_extra(self) -> dict:
        return {"lr": self.optimizers["opt"].param_groups[0]["lr"]}

    def grid(self) -> torch.Tensor:
        k = len(self.grid_y)
        return denoise(self.averages["denoiser_ema"].averaged, make_sampler(DEFAULT_SAMPLER, self.opts.grid_steps,
                                                                            self.schedule),
                       self.grid_noise.repeat(k, 1, 1, 1), self.grid_y.repeat_interleave(GRID_COLUMNS, 0),
                       self.grid_d.repeat_interleave(GRID_COLUMNS, 0), DEFAULT_GUIDANCE)


def train_diffusion(opts: DiffusionOptions, run: Run, *, resume: bool = False, progress: bool = True) -> dict:
    """Train in `run` up to opts.steps; returns the run's diffusion.json contents."""
    return train_generator(opts, run, get("diffusion"), DiffusionTrainee, model_config(opts), resume=resume,
                           progress=progress)
