"""The GAN's options (recipe keys and flags), what of them its run file records, and its run folder's name.

Light: the CLI reads it for its help.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.errors import LabError
from lab.options import GeneratorOptions

GENERATORS = ("dcgan", "fastgan")
DISCRIMINATORS = ("dcgan", "projected", "both")


@dataclass
class GanOptions(GeneratorOptions):
    conditional: bool = True  # False: the unconditional baseline, same networks without the condition
    z_dim: int = 128
    channels: int = 32  # of D's first and G's last layer; doubled at each scale
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    # Mode seeking (Mao et al. 2019): G is rewarded for making different posters from different noise
    # for the same condition; without it a conditional G learns one poster per condition.
    mode_seeking: float = 1.0
    class_weight: float = 0.5  # of D's auxiliary genre/decade classification loss, for D and for G
    generator: str = "dcgan"  # or "fastgan": FastGAN's generator (lab.gan.fastgan)
    # Who judges: "dcgan" (the lab's own D), "projected" (frozen ImageNet features, lab.gan.projected) or
    # "both", the two side by side, their losses added (vision-aided GAN, Kumari et al. 2022).
    discriminator: str = "dcgan"
    projected_width: int = 64  # channels of the projected discriminator's mixed feature maps
    # Transitional conditioning (Shahbazi et al. 2022): [start, end] steps over which the condition is
    # ramped in, from none (an unconditional GAN) to full; [] conditions from the first step.
    condition_ramp: list[int] = field(default_factory=list)
    diffaugment: str = "color,translation,cutout"
    # A classifier run whose frozen network steers G (lab.generation.steering.SteeringLoss): its genre and
    # decade loss on G's posters, weighted steer_weight, ramped in from 0 over the steps steer_ramp names.
    # The classifier costs several G steps, so it may pull every steer_every-th step only, that much harder.
    steer: str | None = None
    steer_weight: float = 0.0
    steer_ramp: list[int] = field(default_factory=list)
    steer_every: int = 1
    # D winning completely: its smoothed hinge loss stays below d_win_loss for d_win_steps steps.
    d_win_loss: float = 0.05
    d_win_steps: int = 1000

    def validate(self) -> None:
        super().validate()
        import torch
        from lab.data.images import parse_size
        from lab.gan.diffaugment import diff_augment
        from lab.gan.model import n_upsamplings
        try:
            n_upsamplings(parse_size(self.size))
            diff_augment(torch.zeros(1, 3, 8, 8), self.diffaugment, torch.Generator())
        except ValueError as e:
            raise LabError(str(e)) from None
        for name in ("lr_g", "lr_d", "mode_seeking", "class_weight", "steer_weight"):
            if not getattr(self, name) >= 0:
                raise LabError(f"{name} must be 0 or more, not {getattr(self, name)}")
        for name in ("z_dim", "channels", "projected_width", "d_win_steps", "steer_every"):
            if getattr(self, name) < 1:
                raise LabError(f"{name} must be at least 1, not {getattr(self, name)}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise LabError(f"beta1 and beta2 must be at least 0 and below 1, not {self.beta1} and {self.beta2}")
        if self.generator not in GENERATORS:
            raise LabError(f"generator must be one of {', '.join(GENERATORS)}, not {self.generator!r}")
        if self.discriminator not in DISCRIMINATORS:
            raise LabError(f"discriminator must be one of {', '.join(DISCRIMINATORS)}, not {self.discriminator!r}")
        _check_ramp("condition_ramp", self.condition_ramp)

        _check_ramp("steer_ramp", self.steer_ramp)
        if bool(self.steer) != bool(self.steer_weight):
            raise LabError("steer (a classifier run) and steer_weight (above 0) go together: give both or neither")
        if self.steer:
            from pathlib import Path

            from lab.kinds import kind_of
            if not self.conditional:
                raise LabError("steer needs a conditional GAN: an unconditional one is asked for no genre")
            if kind_of(Path(self.steer)).name != "classifier":
                raise LabError(f"steer {self.steer} is not a classifier run")

    def condition_strength(self, step: int) -> float:
        """How much of the condition G and D get at `step`: 1 without a ramp."""
        return _ramp(self.condition_ramp, step)

    def steer_strength(self, step: int) -> float:
        """The steering loss's weight at `step`: 0 where it skips the step."""
        if step % self.steer_every:
            return 0.0
        return self.steer_weight * self.steer_every * _ramp(self.steer_ramp, step)


def _check_ramp(name: str, ramp: list) -> None:
    if ramp and (len(ramp) != 2 or not 0 <= ramp[0] < ramp[1]):
        raise LabError(f"{name} must be [] or [start, end] steps with 0 <= start < end, not {ramp}")


def _ramp(ramp: list, step: int) -> float:
    """From 0 before ramp's start to 1 after its end, linearly between; 1 without a ramp."""
    if not ramp:
        return 1.0
    start, end = ramp
    return min(1.0, max(0.0, (step - start) / (end - start)))


def model_config(opts: GanOptions) -> dict:
    # Architecture keys are recorded only where they differ from the DCGAN's, so earlier runs' files match.
    extra = {"generator": opts.generator} if opts.generator != "dcgan" else {}
    if opts.discriminator != "dcgan":
        extra.update(discriminator=opts.discriminator, projected_width=opts.projected_width)
    return {"z_dim": opts.z_dim, "channels": opts.channels, "conditional": opts.conditional, **extra}


def folder_name(opts: GanOptions) -> str:
    return "gan" if opts.conditional else "gan-uncond"


