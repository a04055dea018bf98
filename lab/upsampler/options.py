"""The upsampler's options (recipe keys and flags) and what of them its run file records. Light: the CLI
reads it for its help."""

from __future__ import annotations

from dataclasses import dataclass

from lab.errors import LabError
from lab.options import GeneratorOptions


@dataclass
class UpsamplerOptions(GeneratorOptions):
    """`size` is what it makes, from posters of half that size."""

    channels: int = 32
    blocks: int = 4  # residual blocks at the small size
    lr: float = 1e-3
    ema_decay: float = 0.99
    grid_every: int = 500

    def validate(self) -> None:
        super().validate()
        from lab.data.images import parse_size
        w, h = parse_size(self.size)
        if w % 2 or h % 2:
            raise LabError(f"size {self.size}: an upsampler doubles its input, so both sides must be even")
        if self.channels < 1 or self.blocks < 0:
            raise LabError("channels must be at least 1 and blocks at least 0")


def model_config(opts: UpsamplerOptions) -> dict:
    return {"channels": opts.channels, "blocks": opts.blocks}
