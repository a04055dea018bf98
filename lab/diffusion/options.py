"""The diffusion model's options (recipe keys and flags), what of them its run file records, and the sampling
defaults. Light: the CLI reads it for its help."""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.errors import LabError
from lab.options import GeneratorOptions

PREDICTIONS = {"v": "v_prediction", "epsilon": "epsilon"}
SAMPLERS = ("ddim", "dpm++")
# The best measured at the quick recipe (RESULTS.md, the diffusion sampling sweep).
DEFAULT_SAMPLER = "dpm++"
DEFAULT_STEPS = 20
DEFAULT_GUIDANCE = 6.0


@dataclass
class DiffusionOptions(GeneratorOptions):
    steps: int = 4000
    channels: int = 64  # of the UNet's first level; times `multipliers` at the coarser ones
    multipliers: list[int] = field(default_factory=lambda: [1, 2, 2, 2])  # one per level, each halving the size
    layers_per_block: int = 2
    attention: bool = True  # self-attention at the coarsest level
    prediction: str = "v"  # what the model predicts: "v" (velocity) or "epsilon" (the noise)
    condition_dropout: float = 0.1  # share of posters trained without their condition, for guidance
    # Share of posters trained with their decade but without their genres, drawn apart from condition_dropout,
    # so that the genre gets a guidance scale of its own (--genre-guidance); 0: one guidance for both.
    genre_dropout: float = 0.0
    # Min-SNR-gamma loss weighting (Hang et al. 2023): each noise level's loss weighted by min(SNR, gamma)
    # over what the prediction target gives it, so the nearly clean levels stop dominating; 0: uniform.
    min_snr_gamma: float = 0.0
    lr: float = 2e-4
    warmup_steps: int = 100  # the learning rate rises linearly to `lr` over these first steps
    grad_clip: float = 1.0
    grid_steps: int = DEFAULT_STEPS  # sampling steps of the training grids

    def validate(self) -> None:
        super().validate()
        from lab.data.images import parse_size
        from lab.diffusion.model import check_size
        if not self.multipliers or any(not isinstance(m, int) or m < 1 for m in self.multipliers):
            raise LabError(f"multipliers must be positive whole numbers, one per UNet level, not {self.multipliers}")
        try:
            check_size(parse_size(self.size), len(self.multipliers))
        except ValueError as e:
            raise LabError(str(e)) from None
        if self.channels < 8 or self.channels % 4:
            raise LabError(f"channels must be a multiple of 4, at least 8, not {self.channels}")
        if self.prediction not in PREDICTIONS:
            raise LabError(f"prediction must be one of {', '.join(PREDICTIONS)}, not {self.prediction!r}")
        for name in ("condition_dropout", "genre_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise LabError(f"{name} must be at least 0 and below 1, not {getattr(self, name)}")
        if self.layers_per_block < 1 or self.grid_steps < 1:
            raise LabError("layers_per_block and grid_steps must be at least 1")
        if self.min_snr_gamma < 0:
            raise LabError(f"min_snr_gamma must be 0 (uniform weighting) or above, not {self.min_snr_gamma}")
        if not self.lr > 0:
            raise LabError(f"lr must be above 0, not {self.lr}")


def model_config(opts: DiffusionOptions) -> dict:
    # genre_free is recorded only where it is on, so earlier runs' files match.
    return {"channels": opts.channels, "multipliers": list(opts.multipliers), "layers_per_block": opts.layers_per_block,
            "attention": opts.attention, "schedule": schedule_config(opts.prediction),
            **({"genre_free": True} if opts.genre_dropout else {})}


def schedule_config(prediction: str, timesteps: int = 1000) -> dict:
    """What a run records of its noise schedule (in its run file), enough to rebuild every scheduler."""
    return {"num_train_timesteps": timesteps, "beta_schedule": "squaredcos_cap_v2",
            "prediction_type": PREDICTIONS[prediction]}
