"""`train_upsampler`: a 2x poster upsampler's step, in the generator harness, supervised.

Each step takes a batch of real posters at the run's size, shrinks them by 2x2 averaging, and
teaches the upsampler to give the originals back (L1 loss). Its grid shows, for a few validation
posters, the shrunk poster enlarged bilinearly, the upsampler's, and the real one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lab.generation.harness import Trainee, train_generator
from lab.generation.samples import GRID_COLUMNS
from lab.kinds import get
from lab.runs import Run
from lab.training import WeightAverage
from lab.upsampler.model import shrink
from lab.upsampler.networks import build_model
from lab.upsampler.options import UpsamplerOptions, model_config


class UpsamplerTrainee(Trainee):
    def __init__(self, opts: UpsamplerOptions, info: dict, posters, device):
        model = build_model(info)
        self.networks = {"upsampler": model}
        self.averages = {"upsampler_ema": WeightAverage(model)}
        self.optimizers = {"opt": torch.optim.Adam(model.parameters(), lr=opts.lr)}
        shown = posters.parts["val"][:GRID_COLUMNS] if len(posters.parts["val"]) else posters.parts["train"][:GRID_COLUMNS]
        self.grid_real = torch.from_numpy(posters.images[shown]).permute(0, 3, 1, 2).float().to(device) / 127.5 - 1

    def prepare(self, accelerator) -> None:
        self.model, optimizer = accelerator.prepare(self.networks["upsampler"], self.optimizers["opt"])
        self.optimizers = {"opt": optimizer}

    def step(self, data, rng, step, accelerator) -> torch.Tensor:
        device = data.images.device
        idx = torch.randint(len(data.images), (data.per_process,), generator=rng).to(device, non_blocking=True)
        big = data.images[idx].float() / 127.5 - 1
        loss = F.l1_loss(self.model(shrink(big)).float(), big)
        self.optimizers["opt"].zero_grad(set_to_none=True)
        accelerator.backward(loss)
        self.optimizers["opt"].step()
        return accelerator.reduce(loss.detach().float(), "mean").view(1)

    def grid(self) -> torch.Tensor:
        small = shrink(self.grid_real)
        rows = [F.interpolate(small, scale_factor=2, mode="bilinear", align_corners=False),
                self.averages["upsampler_ema"].averaged(small), self.grid_real]
        blank = torch.ones_like(self.grid_real[:1]).expand(GRID_COLUMNS - len(self.grid_real), -1, -1, -1)
        return torch.cat([torch.cat([row, blank]) for row in rows])


def train_upsampler(opts: UpsamplerOptions, run: Run, *, resume: bool = False, progress: bool = True) -> dict:
    """Train in `run` up to opts.steps; returns the run's upsampler.json contents."""
    return train_generator(opts, run, get("upsampler"), UpsamplerTrainee, model_config(opts), resume=resume,
                           progress=progress)
