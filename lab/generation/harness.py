"""`train_generator`: the one training loop every generator shares (EDM's training_loop is the model).

The harness owns what every generator run does: its options' common part, the posters and run file,
seeding, the networks' start from a parent run (`--init-from`) or from the last checkpoint
(`--resume`), accelerate, one seeded random generator per step and process (so a resumed run repeats
exactly what the uninterrupted run would have done), the weight averages, metrics, grids,
checkpoints (state.pt plus a safetensors file per network, all written whole), a budget of minutes,
the divergence check and the final run file.

A generator supplies a `Trainee`: its networks, weight averages and optimizers by checkpoint name,
its step, its grid and any check of its own.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from lab.checkpoint import STATE_FILE, load_state, save_json, save_state, save_weights
from lab.errors import LabError
from lab.generation.condition import Condition, condition_tensors
from lab.generation.run_info import load_parent_weights, open_training_posters, read_info
from lab.generation.samples import GRID_COLUMNS, save_grid, to_uint8
from lab.options import GeneratorOptions
from lab.runs import Run
from lab.training import WeightAverage, make_accelerator, seeded

log = logging.getLogger(__name__)
CHECKPOINTS = "checkpoints"


@dataclass
class TrainingData:
    """The training posters on the training device: uint8 images (N, 3, H, W), genres (N, G), decades (N,)."""

    images: torch.Tensor
    genres: torch.Tensor
    decades: torch.Tensor
    per_process: int  # posters per step in this process


class Trainee:
    """What a generator gives the harness. Its constructor builds the networks (under the run's seed);
    `networks` and `averages` are saved as safetensors and in state.pt, and loaded from a parent run;
    `optimizers` are saved in state.pt. Names are the checkpoint names."""

    stats: tuple[str, ...] = ("loss",)  # what `step` returns, in this order
    networks: dict[str, torch.nn.Module]
    averages: dict[str, WeightAverage]
    optimizers: dict[str, torch.optim.Optimizer]

    def state(self) -> dict:
        """Counters of its own kept in state.pt beside the harness's (restored by `load_state`)."""
        return {}

    def load_state(self, saved: dict) -> None:
        """Take back what `state` returned, from a resumed checkpoint."""

    def prepare(self, accelerator) -> None:
        """Hand the networks and optimizers to accelerate (each generator in the order its runs always had)."""
        raise NotImplementedError

    def step(self, data: TrainingData, rng: torch.Generator, step: int, accelerator) -> torch.Tensor:
        """One training step; returns `stats` (averaged over processes) on the device, not yet read."""
        raise NotImplementedError

    def after_step(self, stats: torch.Tensor, step: int) -> None:
        """A check that stays on the device (the harness reads it only when it logs)."""

    def check(self, mean: dict[str, float], last_good: Path) -> None:
        """Raise a LabError if the run has gone wrong in a way of this generator's own."""

    def grid(self) -> torch.Tensor:
        """The training grid's posters in [-1, 1] (rows of GRID_COLUMNS), from the weight averages."""
        raise NotImplementedError

    def log_extra(self) -> dict:
        """More figures for each metrics record (a learning rate, say)."""
        return {}


def train_generator(opts: GeneratorOptions, run: Run, kind, make_trainee, model_config: dict, *,
                    resume: bool = False, progress: bool = True) -> dict:
    """Train in `run` up to opts.steps (or opts.minutes); returns the run file's contents.

    `kind` is the run's `lab.kinds.RunKind`; `make_trainee(opts, info, posters, device)` builds the
    generator's `Trainee` (the harness seeds torch first); `model_config` is recorded in the run file.
    """
    opts.validate()
    accelerator = make_accelerator(opts.mixed_precision, run=run)
    parent = read_info(Path(opts.init_from), kind.run_file, kind.name) if opts.init_from else None
    posters, info = open_training_posters(opts, run, kind.run_file, model_config, parent,
                                          accelerator.is_main_process, progress)
    train = posters.parts["train"]
    device = accelerator.device

    torch.manual_seed(opts.seed)
    trainee = make_trainee(opts, info, posters, device)
    ckpt = run.path / CHECKPOINTS
    saved_weights = {**trainee.networks, **{name: avg.model for name, avg in trainee.averages.items()}}
    if parent and not (ckpt / STATE_FILE).exists():
        load_parent_weights(opts.init_from, CHECKPOINTS, saved_weights)
    state = {"step": 0, "seconds": 0.0}
    if resume and (ckpt / STATE_FILE).exists():
        saved = load_state(ckpt / STATE_FILE)
        rates = {name: [g["lr"] for g in opt.param_groups] for name, opt in trainee.optimizers.items()}
        for name, obj in (*trainee.networks.items(), *trainee.averages.items(), *trainee.optimizers.items()):
            obj.load_state_dict(saved.pop(name))
        for name, opt in trainee.optimizers.items():  # the run's options rule, not what the optimizer remembers
            for group, lr in zip(opt.param_groups, rates[name]):
                group["lr"] = lr
        state.update({k: saved.pop(k) for k in list(saved) if k in state})
        trainee.load_state(saved)
        log.info("resuming at step %d", state["step"])
    trainee.prepare(accelerator)

    data = TrainingData(torch.from_numpy(posters.images[train]).permute(0, 3, 1, 2).contiguous().to(device),
                        torch.from_numpy(posters.genre_matrix[train]).to(device),
                        torch.from_numpy(posters.decade_index[train]).to(device),
                        max(1, opts.batch_size // accelerator.num_processes))
    unwrap = accelerator.unwrap_model

    def save_checkpoint():
        if accelerator.is_main_process:
            meta = {"step": str(state["step"])}
            networks = {name: unwrap(net) for name, net in trainee.networks.items()}
            # Resuming reads state.pt alone, renamed into place whole; the safetensors are for users.
            save_state({**{name: net.state_dict() for name, net in networks.items()},
                        **{name: avg.state_dict() for name, avg in trainee.averages.items()},
                        **{name: opt.state_dict() for name, opt in trainee.optimizers.items()},
                        **state, **trainee.state()}, ckpt / STATE_FILE)
            for name, net in (*networks.items(), *((n, a.averaged) for n, a in trainee.averages.items())):
                save_weights(net, ckpt / f"{name}.safetensors", meta)
        accelerator.wait_for_everyone()

    def write_grid():
        if accelerator.is_main_process:
            with torch.no_grad(), accelerator.autocast():
                images = trainee.grid()
            save_grid(to_uint8(images), GRID_COLUMNS, run.path / "grids" / f"step-{state['step']:06d}.png")

    # Stats stay on the device, read only when something is logged or saved, so a step never waits for a GPU.
    sums = torch.zeros(len(trainee.stats), device=device)
    diverged_at = torch.zeros((), device=device)
    bar = tqdm(total=opts.steps, initial=state["step"], desc=f"train-{kind.name}", unit="step",
               disable=not (progress and accelerator.is_main_process))
    window_start, window_steps = time.perf_counter(), 0
    clock, spent, out_of_time = time.perf_counter(), state["seconds"], False
    while state["step"] < opts.steps and not out_of_time:
        step = state["step"]
        stats = trainee.step(data, seeded(opts.seed, "step", step, accelerator.process_index), step, accelerator)
        for average in trainee.averages.values():
            average.update(min(opts.ema_decay, (1 + step) / (10 + step)))
        trainee.after_step(stats, step)
        sums += stats
        diverged_at = torch.where((diverged_at == 0) & ~torch.isfinite(stats).all(), float(step + 1), diverged_at)
        state["step"] = step + 1
        window_steps += 1
        bar.update(1)
        state["seconds"] = spent + time.perf_counter() - clock
        out_of_time = bool(opts.minutes) and state["seconds"] >= 60 * opts.minutes
        done = state["step"] == opts.steps or out_of_time
        logging_now = state["step"] % opts.log_every == 0 or done
        grid_now = state["step"] % opts.grid_every == 0 or done
        checkpoint_now = state["step"] % opts.checkpoint_every == 0 or done
        if not (logging_now or grid_now or checkpoint_now):
            continue
        # Checked before anything is written, so that no grid or checkpoint comes from a diverged step.
        mean = dict(zip(trainee.stats, (sums / window_steps).tolist()))
        if int(diverged_at.item()):
            figures = ", ".join(f"{k} {v}" for k, v in mean.items())
            _stop(f"training diverged at step {int(diverged_at.item())}: {figures}; the last good checkpoint is "
                  f"{ckpt} (try lower learning rates, then --resume)")
        try:
            trainee.check(mean, ckpt)
        except LabError as e:
            _stop(str(e))
        if logging_now:
            seconds = time.perf_counter() - window_start
            bar.set_postfix({k: f"{v:.3f}" for k, v in list(mean.items())[:2]})
            if accelerator.is_main_process:
                run.log_metrics({"step": state["step"], **{k: round(v, 5) for k, v in mean.items()},
                                 **trainee.log_extra(),
                                 "posters_per_s": round(window_steps * opts.batch_size / seconds, 1),
                                 "processes": accelerator.num_processes})
            sums.zero_()
            window_start, window_steps = time.perf_counter(), 0
        if grid_now:
            write_grid()
        if checkpoint_now:
            save_checkpoint()
    bar.close()
    info["steps"] = state["step"]
    if accelerator.is_main_process:
        save_json(info, run.path / kind.run_file)
    return info


def grid_conditions(info: dict, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The training grids' rows: (genres (R, G), decades (R,)) of the conditions the run file names."""
    return condition_tensors([Condition.from_dict(c) for c in info["grid"]], info["genres"], info["decades"], device)


def grid_noise(opts: GeneratorOptions, shape: tuple[int, ...], device) -> torch.Tensor:
    """The fixed noises of the training grids' columns, the same at every step and after a resume."""
    return torch.randn(GRID_COLUMNS, *shape, generator=seeded(opts.seed, "grid")).to(device)


def _stop(message: str) -> None:
    log.error(message)
    raise LabError(message)
