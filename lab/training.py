"""What every training loop shares: seeded random generators and the accelerate setup."""

from __future__ import annotations

import hashlib

import torch
from accelerate import Accelerator


def seeded(*parts) -> torch.Generator:
    """A generator seeded by its name: the same parts give the same draws, in any process, after a resume."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def make_accelerator(mixed_precision: str = "auto", grad_accum: int = 1) -> Accelerator:
    """'auto' is bf16 where a GPU supports it and full precision on CPU."""
    if mixed_precision == "auto":
        mixed_precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return Accelerator(mixed_precision=mixed_precision, gradient_accumulation_steps=grad_accum)
