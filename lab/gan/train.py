"""`train_gan`: the conditional poster GAN's step, in the generator harness (lab.generation.harness).

Hinge loss, spectral-norm projection discriminator(s) with an auxiliary genre/decade classifier, DiffAugment
on everything D sees, a mode-seeking term, an EMA copy of G for sampling, optional transitional conditioning
and a classifier that steers G; every draw comes from the harness's generator of the step.
"""

from __future__ import annotations

import torch

from lab.errors import LabError
from lab.gan.diffaugment import diff_augment
from lab.gan.losses import DWinDetector, class_loss, d_hinge, spread, total
from lab.gan.networks import build_discriminators, build_generator
from lab.gan.options import GanOptions, model_config
from lab.generation.harness import Trainee, grid_conditions, grid_noise, train_generator
from lab.generation.samples import GRID_COLUMNS
from lab.generation.steering import SteeringLoss
from lab.kinds import get
from lab.runs import Run
from lab.training import WeightAverage


class GanTrainee(Trainee):
    stats = ("d_loss", "g_loss", "d_real", "d_fake", "spread", "d_class", "g_class", "g_steer")

    def __init__(self, opts: GanOptions, info: dict, posters, device):
        self.opts = opts
        generator, self.judges = build_generator(info), build_discriminators(info)
        self.networks = {"g": generator, **self.judges}
        self.averages = {"g_ema": WeightAverage(generator)}  # follows G to accelerate's device
        self.optimizers = {
            "opt_g": torch.optim.Adam(generator.parameters(), lr=opts.lr_g, betas=(opts.beta1, opts.beta2)),
            "opt_d": torch.optim.Adam([p for d in self.judges.values() for p in d.parameters() if p.requires_grad],
                                      lr=opts.lr_d, betas=(opts.beta1, opts.beta2))}
        self.grid_y, self.grid_d = grid_conditions(info, device)
        self.grid_z = grid_noise(opts, (opts.z_dim,), device)
        self.zero = torch.zeros((), device=device)
        self.d_wins = DWinDetector(opts.d_win_loss, opts.d_win_steps, device)
        self.steering = SteeringLoss(opts.steer, info["genres"], info["decades"], device) if opts.steer else None

    def state(self) -> dict:
        return self.d_wins.state()

    def load_state(self, saved: dict) -> None:
        self.d_wins.load_state(saved)

    def prepare(self, accelerator) -> None:
        generator, opt_g, opt_d, *judges = accelerator.prepare(self.networks["g"], self.optimizers["opt_g"],
                                                               self.optimizers["opt_d"], *self.judges.values())
        self.generator, self.judges = generator, dict(zip(self.judges, judges))
        self.optimizers = {"opt_g": opt_g, "opt_d": opt_d}

    def step(self, data, rng, step, accelerator) -> torch.Tensor:
        opts, device, per_process, n = self.opts, data.images.device, data.per_process, len(data.images)
        opt_g, opt_d, zero = self.optimizers["opt_g"], self.optimizers["opt_d"], self.zero
        real_idx = torch.randint(n, (per_process,), generator=rng).to(device, non_blocking=True)
        # Conditions to generate, each twice with different noise, for the mode-seeking term.
        fake_idx = torch.randint(n, ((per_process + 1) // 2,), generator=rng).repeat(2)[:per_process]
        fake_idx = fake_idx.to(device, non_blocking=True)
        z = torch.randn(per_process, opts.z_dim, generator=rng).to(device, non_blocking=True)
        real = data.images[real_idx].float() / 127.5 - 1
        (y_real, d_real), (y_fake, d_fake) = ((data.genres[i], data.decades[i]) for i in (real_idx, fake_idx))

        strength = opts.condition_strength(step)
        fake = self.generator(z, y_fake, d_fake, strength)
        # Real and fake in one forward: D has no batch norm, and DDP wants one forward per backward.
        seen = diff_augment(torch.cat([real, fake.detach()]), opts.diffaugment, rng).contiguous(memory_format=torch.channels_last)
        y_both, d_both = torch.cat([y_real, y_fake]), torch.cat([d_real, d_fake])
        d_losses, d_classes, real_scores, fake_scores = [], [], [], []
        for judge in self.judges.values():
            scores, classes = judge(seen, y_both, d_both, strength)
            scores = scores.float()
            d_losses.append(d_hinge(scores, per_process))
            real_scores.append(scores[:per_process].mean())
            fake_scores.append(scores[per_process:].mean())
            # D learns to name the condition of real posters only; G then has to make its own recognisable.
            d_classes.append(class_loss(classes[:per_process], y_real, d_real) if opts.conditional else zero)
        d_loss, d_class = total(d_losses), total(d_classes)
        opt_d.zero_grad(set_to_none=True)
        accelerator.backward(d_loss + strength * opts.class_weight * d_class)
        opt_d.step()

        seen = diff_augment(fake, opts.diffaugment, rng).contiguous(memory_format=torch.channels_last)
        g_losses, g_classes = [], []
        for judge in self.judges.values():
            scores, classes = judge(seen, y_fake, d_fake, strength)
            g_losses.append(-scores.float().mean())
            g_classes.append(class_loss(classes, y_fake, d_fake) if opts.conditional else zero)
        g_loss, g_class = total(g_losses), total(g_classes)
        variety = spread(fake, z, (per_process + 1) // 2)
        g_steer = self.steering(fake, y_fake, d_fake, rng) if opts.steer_strength(step) else zero  # only with steer
        opt_g.zero_grad(set_to_none=True)
        accelerator.backward(g_loss + strength * opts.class_weight * g_class + opts.mode_seeking / (variety + 1e-5)
                             + opts.steer_strength(step) * g_steer)
        opt_g.step()
        opt_d.zero_grad(set_to_none=True)  # G's step left gradients in D; none may leak into D's next step
        stats = (d_loss, g_loss, total(real_scores), total(fake_scores), variety, d_class, g_class, g_steer)
        return accelerator.reduce(torch.stack([s.detach() for s in stats]).float(), "mean")

    def after_step(self, stats: torch.Tensor, step: int) -> None:
        self.d_wins.update(stats[0], step)

    def check(self, mean: dict, last_good) -> None:
        if collapsed_at := int(self.d_wins.collapsed_at.item()):
            raise LabError(f"training collapsed at step {collapsed_at}: D has separated real from fake for "
                           f"{self.opts.d_win_steps} steps (smoothed D loss {self.d_wins.d_loss_ema.item():.4f}); "
                           f"the last good checkpoint is {last_good} (more DiffAugment or fewer steps would help)")

    def grid(self) -> torch.Tensor:
        k = len(self.grid_y)
        return self.averages["g_ema"].averaged(self.grid_z.repeat(k, 1), self.grid_y.repeat_interleave(GRID_COLUMNS, 0),
                                               self.grid_d.repeat_interleave(GRID_COLUMNS, 0))


def train_gan(opts: GanOptions, run: Run, *, resume: bool = False, progress: bool = True) -> dict:
    """Train in `run` up to opts.steps; returns the run's gan.json contents."""
    return train_generator(opts, run, get("gan"), GanTrainee, model_config(opts), resume=resume, progress=progress)
