"""`train_gan`: train the conditional poster GAN on the training part of a run's split.

Hinge loss, spectral-norm projection discriminator, DiffAugment on everything D sees, an EMA copy
of G for sampling, and fixed-noise grids written as training goes. Every random draw of a step
(the batch, the noise, the augmentation) comes from a generator seeded by (seed, step, process),
so a run continued with `resume` repeats exactly what the uninterrupted run would have done.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from lab.checkpoint import load_state, save_json, save_state, save_weights
from lab.data.filters import DataOptions
from lab.data.images import parse_size
from lab.errors import LabError
from lab.gan.diffaugment import diff_augment
from lab.gan.model import Discriminator, Generator, n_upsamplings
from lab.generation.condition import Condition, condition_tensors
from lab.generation.run_info import load_parent_weights, open_training_posters, read_info
from lab.generation.samples import save_grid, to_uint8
from lab.runs import Run
from lab.training import WeightAverage, make_accelerator, seeded

log = logging.getLogger(__name__)
STATS = ("d_loss", "g_loss", "d_real", "d_fake", "spread", "d_class", "g_class")
RUN_FILE = "gan.json"
CHECKPOINTS = "checkpoints"
GRID_COLUMNS = 8


@dataclass
class GanOptions(DataOptions):
    size: str = "64x96"
    conditional: bool = True  # False: the unconditional baseline, same networks without the condition
    z_dim: int = 128
    channels: int = 32  # of D's first and G's last layer; doubled at each scale
    batch_size: int = 32  # over all processes
    steps: int = 2000
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    ema_decay: float = 0.999
    # Mode seeking (Mao et al. 2019): G is rewarded for making different posters from different noise
    # for the same condition; without it a conditional G learns one poster per condition.
    mode_seeking: float = 1.0
    class_weight: float = 0.5  # of D's auxiliary genre/decade classification loss, for D and for G
    diffaugment: str = "color,translation,cutout"
    init_from: str | None = None  # a GAN run to fine-tune from
    grid_every: int = 250
    checkpoint_every: int = 250
    log_every: int = 25
    # D winning completely: its smoothed hinge loss stays below d_win_loss for d_win_steps steps.
    d_win_loss: float = 0.05
    d_win_steps: int = 1000
    mixed_precision: str = "auto"
    seed: int = 0
    split_seed: int = 0

    def validate(self) -> None:
        try:
            n_upsamplings(parse_size(self.size))
            diff_augment(torch.zeros(1, 3, 8, 8), self.diffaugment, torch.Generator())
        except ValueError as e:
            raise LabError(str(e)) from None
        if self.batch_size < 1 or self.steps < 1:
            raise LabError("--batch-size and --steps must be at least 1")


def model_config(opts: GanOptions) -> dict:
    return {"z_dim": opts.z_dim, "channels": opts.channels, "conditional": opts.conditional}


def build_models(info: dict) -> tuple[Generator, Discriminator]:
    cfg, size = info["model"], tuple(info["size"])
    g = Generator(size, len(info["genres"]), len(info["decades"]), z_dim=cfg["z_dim"], channels=cfg["channels"],
                  conditional=cfg["conditional"])
    d = Discriminator(size, len(info["genres"]), len(info["decades"]), channels=cfg["channels"],
                      conditional=cfg["conditional"])
    # channels_last convolutions are markedly faster on CPU, and no slower on GPU.
    return g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)


def load_gan_info(run_dir: Path) -> dict:
    return read_info(run_dir, RUN_FILE, "GAN")


def train_gan(opts: GanOptions, run: Run, *, resume: bool = False, progress: bool = True) -> dict:
    """Train in `run` up to opts.steps; returns the run's gan.json contents."""
    opts.validate()
    accelerator = make_accelerator(opts.mixed_precision)
    parent = load_gan_info(Path(opts.init_from)) if opts.init_from else None
    posters, info = open_training_posters(opts, run, RUN_FILE, model_config(opts), parent,
                                          accelerator.is_main_process, progress)
    train = posters.parts["train"]

    torch.manual_seed(opts.seed)
    generator, discriminator = build_models(info)
    ckpt = run.path / CHECKPOINTS
    ema = WeightAverage(generator)  # follows G to accelerate's device
    if parent and not (ckpt / "state.pt").exists():
        load_parent_weights(opts.init_from, CHECKPOINTS, {"g": generator, "d": discriminator, "g_ema": ema.model})
    opt_g = torch.optim.Adam(generator.parameters(), lr=opts.lr_g, betas=(opts.beta1, opts.beta2))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=opts.lr_d, betas=(opts.beta1, opts.beta2))
    state = {"step": 0, "d_loss_ema": 1.0, "d_win_streak": 0}
    if resume and (ckpt / "state.pt").exists():
        saved = load_state(ckpt / "state.pt")
        for obj, key in ((generator, "g"), (discriminator, "d"), (ema, "g_ema"), (opt_g, "opt_g"), (opt_d, "opt_d")):
            obj.load_state_dict(saved.pop(key))
        state.update(saved)
        for optimizer, lr in ((opt_g, opts.lr_g), (opt_d, opts.lr_d)):
            for group in optimizer.param_groups:
                group["lr"] = lr  # the run's options rule, not what the optimizer state remembers
        log.info("resuming at step %d", state["step"])
    generator, discriminator, opt_g, opt_d = accelerator.prepare(generator, discriminator, opt_g, opt_d)
    g_net, d_net = accelerator.unwrap_model(generator), accelerator.unwrap_model(discriminator)

    device = accelerator.device
    images = torch.from_numpy(posters.images[train]).permute(0, 3, 1, 2).contiguous().to(device)
    genres = torch.from_numpy(posters.genre_matrix[train]).to(device)
    decades = torch.from_numpy(posters.decade_index[train]).to(device)
    per_process = max(1, opts.batch_size // accelerator.num_processes)
    zero = torch.zeros((), device=device)
    grid = [Condition.from_dict(c) for c in info["grid"]]
    grid_y, grid_d = condition_tensors(grid, info["genres"], info["decades"], device)
    grid_z = torch.randn(GRID_COLUMNS, opts.z_dim, generator=seeded(opts.seed, "grid")).to(device)

    # Losses and the collapse detector stay on the device; they are read only when something is
    # logged or saved, so that a step never waits for the GPU.
    sums = torch.zeros(len(STATS), device=device)
    d_loss_ema = torch.tensor(float(state["d_loss_ema"]), device=device)
    d_win_streak = torch.tensor(float(state["d_win_streak"]), device=device)
    alarms = torch.zeros(2, device=device)  # the first step whose losses were not finite, and that D had won at

    def save_checkpoint():
        if accelerator.is_main_process:
            meta = {"step": str(state["step"])}
            # Resuming reads state.pt alone, renamed into place whole; the safetensors are for users.
            save_state({"g": g_net.state_dict(), "d": d_net.state_dict(), "g_ema": ema.state_dict(),
                        "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), **state}, ckpt / "state.pt")
            for net, name in ((g_net, "g"), (d_net, "d"), (ema.averaged, "g_ema")):
                save_weights(net, ckpt / f"{name}.safetensors", meta)
        accelerator.wait_for_everyone()

    def write_grid():
        if accelerator.is_main_process:
            with torch.no_grad(), accelerator.autocast():
                k = len(grid)
                fakes = ema.averaged(grid_z.repeat(k, 1), grid_y.repeat_interleave(GRID_COLUMNS, 0),
                                     grid_d.repeat_interleave(GRID_COLUMNS, 0))
            save_grid(to_uint8(fakes), GRID_COLUMNS, run.path / "grids" / f"step-{state['step']:06d}.png")

    bar = tqdm(total=opts.steps, initial=state["step"], desc="train-gan", unit="step",
               disable=not (progress and accelerator.is_main_process))
    window_start, window_steps = time.perf_counter(), 0
    while state["step"] < opts.steps:
        step = state["step"]
        rng = seeded(opts.seed, "step", step, accelerator.process_index)
        real_idx = torch.randint(len(train), (per_process,), generator=rng).to(device, non_blocking=True)
        # Conditions to generate, each twice with different noise, for the mode-seeking term.
        fake_idx = torch.randint(len(train), ((per_process + 1) // 2,), generator=rng).repeat(2)[:per_process]
        fake_idx = fake_idx.to(device, non_blocking=True)
        z = torch.randn(per_process, opts.z_dim, generator=rng).to(device, non_blocking=True)
        real = images[real_idx].float() / 127.5 - 1
        y_real, d_real, y_fake, d_fake = genres[real_idx], decades[real_idx], genres[fake_idx], decades[fake_idx]

        fake = generator(z, y_fake, d_fake)
        # Real and fake in one forward: D has no batch norm, and DDP wants one forward per backward.
        seen = diff_augment(torch.cat([real, fake.detach()]), opts.diffaugment, rng)
        scores, classes = discriminator(seen.contiguous(memory_format=torch.channels_last),
                                        torch.cat([y_real, y_fake]), torch.cat([d_real, d_fake]))
        scores = scores.float()
        d_loss = F.relu(1 - scores[:per_process]).mean() + F.relu(1 + scores[per_process:]).mean()
        # D learns to name the condition of real posters only; G then has to make its own recognisable.
        d_class = d_net.class_loss(classes[:per_process], y_real, d_real) if opts.conditional else zero
        opt_d.zero_grad(set_to_none=True)
        accelerator.backward(d_loss + opts.class_weight * d_class)
        opt_d.step()

        fake_scores, fake_classes = discriminator(
            diff_augment(fake, opts.diffaugment, rng).contiguous(memory_format=torch.channels_last), y_fake, d_fake)
        g_loss = -fake_scores.float().mean()
        g_class = d_net.class_loss(fake_classes, y_fake, d_fake) if opts.conditional else zero
        spread = _spread(fake, z, (per_process + 1) // 2)
        opt_g.zero_grad(set_to_none=True)
        accelerator.backward(g_loss + opts.class_weight * g_class + opts.mode_seeking / (spread + 1e-5))
        opt_g.step()
        opt_d.zero_grad(set_to_none=True)  # G's step left gradients in D; none may leak into D's next step
        ema.update(min(opts.ema_decay, (1 + step) / (10 + step)))

        stats = accelerator.reduce(torch.stack([d_loss.detach(), g_loss.detach(), scores[:per_process].mean().detach(),
                                                scores[per_process:].mean().detach(), spread.detach(),
                                                d_class.detach(), g_class.detach()]).float(), "mean")
        sums += stats
        d_loss_ema = 0.98 * d_loss_ema + 0.02 * stats[0]
        d_win_streak = (d_win_streak + 1) * (d_loss_ema < opts.d_win_loss)
        now = torch.stack([~torch.isfinite(stats[:2]).all(), d_win_streak >= opts.d_win_steps])
        alarms = torch.where((alarms == 0) & now, float(step + 1), alarms)
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
        read = torch.cat([sums / window_steps, alarms, d_loss_ema.view(1), d_win_streak.view(1)]).tolist()
        mean, (diverged_at, collapsed_at, state["d_loss_ema"], streak) = read[:len(STATS)], read[len(STATS):]
        state["d_win_streak"] = int(streak)
        _check_divergence(mean, int(diverged_at), int(collapsed_at), state, opts, run)
        if logging_now:
            seconds = time.perf_counter() - window_start
            record = {"step": state["step"], **dict(zip(STATS, mean)),
                      "posters_per_s": round(window_steps * opts.batch_size / seconds, 1),
                      "processes": accelerator.num_processes}
            bar.set_postfix(d=f"{mean[0]:.3f}", g=f"{mean[1]:.3f}")
            if accelerator.is_main_process:
                run.log_metrics({k: round(float(v), 4) if isinstance(v, float) else v for k, v in record.items()})
            sums.zero_()
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


def _spread(fake: torch.Tensor, z: torch.Tensor, m: int) -> torch.Tensor:
    """How far apart posters of the same condition are per unit of noise: images k and k + m share one."""
    pairs = len(z) - m
    if pairs < 1:
        return torch.ones((), device=z.device)
    return ((fake[:pairs] - fake[m:]).abs().mean() / (z[:pairs] - z[m:]).abs().mean().clamp(min=1e-5)).float()


def _check_divergence(mean: list[float], diverged_at: int, collapsed_at: int, state: dict, opts: GanOptions,
                      run: Run) -> None:
    """Stop before anything is saved from a diverged step, so the last checkpoint stays good."""
    last = f"the last good checkpoint is {run.path / CHECKPOINTS}"
    if diverged_at:
        _stop(f"training diverged at step {diverged_at}: D loss {mean[0]}, G loss {mean[1]}; {last} "
              "(try lower --lr-g/--lr-d, then --resume)")
    if collapsed_at:
        _stop(f"training collapsed at step {collapsed_at}: D has separated real from fake for "
              f"{opts.d_win_steps} steps (smoothed D loss {state['d_loss_ema']:.4f}); {last} "
              "(more DiffAugment or fewer steps would help)")


def _stop(message: str) -> None:
    log.error(message)
    raise LabError(message)
