"""What every run's options have in common: the data they train on, and (generators) the training loop's.

Light on purpose, like every options module of the lab: the CLI reads these classes for its help
(defaults come from them), so they import nothing heavy; their checks import what they need.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.errors import LabError


@dataclass
class DataOptions:
    """The options every run that trains on posters starts with: where they are, and which to keep."""

    data: str = "data/posters"
    genre: list[str] = field(default_factory=list)
    decade: list[str] = field(default_factory=list)
    year_min: int | None = None
    year_max: int | None = None

    @property
    def poster_filter(self):
        from lab.data.filters import PosterFilter
        return PosterFilter.from_options(self.genre, self.decade, self.year_min, self.year_max)



@dataclass
class GeneratorOptions(DataOptions):
    """What every generator run's options have; each generator's options add their own."""

    size: str = "64x96"
    batch_size: int = 32  # over all processes
    steps: int = 2000
    # A budget of training minutes (0: none): the run ends, checkpointed, at the first step past it, even
    # before `steps`; its step count then repeats it exactly.
    minutes: float = 0.0
    ema_decay: float = 0.999
    init_from: str | None = None  # a run of the same kind to fine-tune from
    grid_every: int = 250
    checkpoint_every: int = 250
    log_every: int = 25
    mixed_precision: str = "auto"
    seed: int = 0
    split_seed: int = 0

    def validate(self) -> None:
        """A one-line LabError for a value no run can start with; each generator adds its own checks."""
        from lab.data.images import parse_size
        parse_size(self.size)
        for name in ("batch_size", "steps", "grid_every", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise LabError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.minutes < 0:
            raise LabError(f"minutes must be 0 (no budget) or more, not {self.minutes}")
        if not 0 <= self.ema_decay < 1:
            raise LabError(f"ema_decay must be at least 0 and below 1, not {self.ema_decay}")
