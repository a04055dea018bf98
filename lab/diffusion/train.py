"""`train_diffusion`: train the conditional poster diffusion model on the training part of a run's split.

Each step takes a batch of posters, a noise level and Gaussian noise per poster, and teaches the
denoiser to predict the velocity (v) or the noise (epsilon) of the noisy posters; a share of the
posters loses its condition, so that one model is conditional and unconditional at once and
classifier-free guidance works. An EMA copy of the weights samples the grids written as training
goes. Every random draw of a step comes from a generator seeded by (seed, step, process), so a run
continued with `resume` repeats exactly what the uninterrupted run would have done.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from lab.checkpoint import load_state, save_json, save_state, save_weights
from lab.data.filters import DataOptions
from lab.data.images import parse_size
from lab.diffusion.model import PosterDenoiser, check_size
from lab.diffusion.sampler import (DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS, PREDICTIONS, denoise,
                                   make_sampler, schedule_config, training_scheduler)
from lab.errors import LabError
from lab.generation.condition import Condition, condition_tensors
from lab.generation.run_info import load_parent_weights, open_training_posters, read_info
from lab.generation.samples import GRID_COLUMNS, save_grid, to_uint8
from lab.runs import Run
from lab.training import WeightAverage, make_accelerator, seeded

log = logging.getLogger(__name__)
RUN_FILE = "diffusion.json"
CHECKPOINTS = "checkpoints"
NET, EMA = "denoiser", "denoiser_ema"  # the weights files (and their keys in state.pt)


@dataclass
class DiffusionOptions(DataOptions):
    size: str = "64x96"
    channels: int = 64  # of the UNet's first level; times `multipliers` at the coarser ones
    multipliers: list[int] = field(default_factory=lambda: [1, 2, 2, 2])  # one per level, each halving the size
    layers_per_block: int = 2
    attention: bool = True  # self-attention at the coarsest level
    prediction: str = "v"  # what the model predicts: "v" (velocity) or "epsilon" (the noise)
    condition_dropout: float = 0.1  # share of posters trained without their condition, for guidance
    batch_size: int = 32  # over all processes
    steps: int = 4000
    lr: float = 2e-4
    warmup_steps: int = 100  # the learning rate rises linearly to `lr` over these first steps
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    init_from: str | None = None  # a diffusion run to fine-tune from
    grid_every: int = 250
    grid_steps: int = DEFAULT_STEPS  # sampling steps of the training grids
    checkpoint_every: int = 250
    log_every: int = 25
    mixed_precision: str = "auto"
    seed: int = 0
    split_seed: int = 0

    def validate(self) -> None:
        if not self.multipliers or any(not isinstance(m, int) or m < 1 for m in self.multipliers):
            raise LabError(f"multipliers must be positive whole numbers, one per UNet level, not {self.multipliers}")
        try:
            check_size(parse_size(self.size), len(self.multipliers))
        except ValueError as e:
            raise LabError(str(e)) from None
        if self.channels < 8 or self.channels % 4:
            raise LabError(f"--channels must be a multiple of 4, at least 8, not {self.channels}")
        if self.prediction not in PREDICTIONS:
            raise LabError(f"--prediction must be one of {', '.join(PREDICTIONS)}, not {self.prediction!r}")
        if not 0 <= self.condition_dropout < 1:
            raise LabError(f"--condition-dropout must be at least 0 and below 1, not {self.condition_dropout}")
        if self.batch_size < 1 or self.steps < 1 or self.layers_per_block < 1 or self.grid_steps < 1:
            raise LabError("--batch-size, --steps, layers_per_block and grid_steps must be at least 1")
        if not self.lr > 0:
            raise LabError(f"--lr must be above 0, not {self.lr}")


def model_config(opts: DiffusionOptions) -> dict:
    return {"channels": opts.channels, "multipliers": list(opts.multipliers), "layers_per_block": opts.layers_per_block,
            "attention": opts.attention, "schedule": schedule_config(opts.prediction)}


def build_model(info: dict) -> PosterDenoiser:
    cfg = info["model"]
    return PosterDenoiser(tuple(info["size"]), len(info["genres"]), len(info["decades"]), channels=cfg["channels"],
                          multipliers=tuple(cfg["multipliers"]), layers_per_block=cfg["layers_per_block"],
                          attention=cfg["attention"])


def load_diffusion_info(run_dir: Path) -> dict:
    return read_info(run_dir, RUN_FILE, "diffusion")


def train_diffusion(opts: DiffusionOptions, run: Run, *, resume: bool = False, progress: bool = True) -> dict:
    """Train in `run` up to opts.steps; returns the run's diffusion.json contents."""
    opts.validate()
    accelerator = make_accelerator(opts.mixed_precision)
    parent = load_diffusion_info(Path(opts.init_from)) if opts.init_from else None
    posters, info = open_training_posters(opts, run, RUN_FILE, model_config(opts), parent,
                                          accelerator.is_main_process, progress)
    size = parse_size(opts.size)
    train = posters.parts["train"]

    torch.manual_seed(opts.seed)
    model = build_model(info)
    ckpt = run.path / CHECKPOINTS
    fresh = not (ckpt / "state.pt").exists()
    ema = WeightAverage(model)  # follows the model to accelerate's device
    if parent and fresh:
        load_parent_weights(opts.init_from, CHECKPOINTS, {NET: model, EMA: ema.model})
    optimizer = torch.optim.Adam(model.parameters(), lr=opts.lr)
    state = {"step": 0}
    if resume and not fresh:
        saved = load_state(ckpt / "state.pt")
        for obj, key in ((model, NET), (ema, EMA), (optimizer, "opt")):
            obj.load_state_dict(saved.pop(key))
        state.update(saved)
        log.info("resuming at step %d", state["step"])
    model, optimizer = accelerator.prepare(model, optimizer)
    net = accelerator.unwrap_model(model)

    device = accelerator.device
    noise_schedule = training_scheduler(info["model"]["schedule"])
    alphas = noise_schedule.alphas_cumprod.to(device)
    noise_schedule.alphas_cumprod = alphas  # add_noise and get_velocity then stay on the device
    images = torch.from_numpy(posters.images[train]).permute(0, 3, 1, 2).contiguous().to(device)
    genres = torch.from_numpy(posters.genre_matrix[train]).to(device)
    decades = torch.from_numpy(posters.decade_index[train]).to(device)
    per_process = max(1, opts.batch_size // accelerator.num_processes)
    n_levels = noise_schedule.config.num_train_timesteps
    grid = [Condition.from_dict(c) for c in info["grid"]]
    grid_y, grid_d = condition_tensors(grid, info["genres"], info["decades"], device)
    grid_noise = torch.randn(GRID_COLUMNS, 3, size[1], size[0], generator=seeded(opts.seed, "grid")).to(device)

    # The loss stays on the device; it is read only when something is logged or saved, so that a
    # step never waits for the GPU.
    loss_sum = torch.zeros((), device=device)
    diverged_at = torch.zeros((), device=device)

    def save_checkpoint():
        if accelerator.is_main_process:
            meta = {"step": str(state["step"])}
            # Resuming reads state.pt alone, renamed into place whole; the safetensors are for users.
            save_state({NET: net.state_dict(), EMA: ema.state_dict(), "opt": optimizer.state_dict(), **state},
                       ckpt / "state.pt")
            for module, name in ((net, NET), (ema.averaged, EMA)):
                save_weights(module, ckpt / f"{name}.safetensors", meta)
        accelerator.wait_for_everyone()

    def write_grid():
        if accelerator.is_main_process:
            k = len(grid)
            with accelerator.autocast():
                fakes = denoise(ema.averaged, make_sampler(DEFAULT_SAMPLER, opts.grid_steps, info["model"]["schedule"]),
                                grid_noise.repeat(k, 1, 1, 1), grid_y.repeat_interleave(GRID_COLUMNS, 0),
                                grid_d.repeat_interleave(GRID_COLUMNS, 0), DEFAULT_GUIDANCE)
            save_grid(to_uint8(fakes), GRID_COLUMNS, run.path / "grids" / f"step-{state['step']:06d}.png")

    bar = tqdm(total=opts.steps, initial=state["step"], desc="train-diffusion", unit="step",
               disable=not (progress and accelerator.is_main_process))
    window_start, window_steps = time.perf_counter(), 0
    while state["step"] < opts.steps:
        step = state["step"]
        rng = seeded(opts.seed, "step", step, accelerator.process_index)
        idx = torch.randint(len(train), (per_process,), generator=rng).to(device, non_blocking=True)
        t = torch.randint(n_levels, (per_process,), generator=rng).to(device, non_blocking=True)
        noise = torch.randn(per_process, 3, size[1], size[0], generator=rng).to(device, non_blocking=True)
        keep = (torch.rand(per_process, generator=rng) >= opts.condition_dropout).to(device, non_blocking=True)
        clean = images[idx].float() / 127.5 - 1
        noisy = noise_schedule.add_noise(clean, noise, t)
        target = noise_schedule.get_velocity(clean, noise, t) if opts.prediction == "v" else noise
        loss = F.mse_loss(model(noisy, t, genres[idx], decades[idx], keep).float(), target)
        for group in optimizer.param_groups:  # a function of the step alone, so a resume repeats it
            group["lr"] = opts.lr * min(1.0, (step + 1) / max(1, opts.warmup_steps))
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        if opts.grad_clip > 0:
            accelerator.clip_grad_norm_(model.parameters(), opts.grad_clip)
        optimizer.step()
        ema.update(min(opts.ema_decay, (1 + step) / (10 + step)))

        mean_loss = accelerator.reduce(loss.detach().float(), "mean")
        loss_sum += mean_loss
        diverged_at = torch.where((diverged_at == 0) & ~torch.isfinite(mean_loss), float(step + 1), diverged_at)
        state["step"] = step + 1
        window_steps += 1
        bar.update(1)
        done = state["step"] == opts.steps
        logging_now = state["step"] % opts.log_every == 0 or done
        grid_now = state["step"] % opts.grid_every == 0 or done
        checkpoint_now = state["step"] % opts.checkpoint_every == 0 or done
        if not (logging_now or grid_now or checkpoint_now):
            continue
        # Checked before anything is written, so that no grid or checkpoint comes from a diverged step.
        window_loss, first_bad = (loss_sum / window_steps).item(), int(diverged_at.item())
        if first_bad:
            message = (f"training diverged at step {first_bad}: loss {window_loss}; the last good checkpoint is "
                       f"{ckpt} (try a lower --lr, then --resume)")
            log.error(message)
            raise LabError(message)
        if logging_now:
            seconds = time.perf_counter() - window_start
            bar.set_postfix(loss=f"{window_loss:.4f}")
            if accelerator.is_main_process:
                run.log_metrics({"step": state["step"], "loss": round(window_loss, 5),
                                 "lr": optimizer.param_groups[0]["lr"],
                                 "posters_per_s": round(window_steps * opts.batch_size / seconds, 1),
                                 "processes": accelerator.num_processes})
            loss_sum.zero_()
            window_start, window_steps = time.perf_counter(), 0
        if grid_now:
            write_grid()
        if checkpoint_now:
            save_checkpoint()
    bar.close()
    info["steps"] = state["step"]
    if accelerator.is_main_process:
        save_json(info, run.path / RUN_FILE)
    return info
