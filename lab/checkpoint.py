"""Checkpoints that cannot run code: weights in safetensors, training state loaded weights-only.

Every file is written to a temporary name and renamed, so a kill never leaves half a checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lab.errors import LabError


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_weights(module: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    _atomic(path, lambda tmp: save_file(state, str(tmp), metadata=metadata))


def load_weights(module: torch.nn.Module, path: Path) -> dict[str, str]:
    """Load into `module`; returns the file's metadata (e.g. the training step it was saved at)."""
    if not Path(path).is_file():
        raise LabError(f"checkpoint {path} is missing")
    try:
        module.load_state_dict(load_file(str(path)))
    except RuntimeError as e:  # other layer names or shapes: another model, or an older lab's layout
        raise LabError(f"checkpoint {path} does not fit this model ({str(e).splitlines()[0]}); "
                       "it was made by another model or another version of the lab") from None
    with safe_open(str(path), "pt") as f:
        return f.metadata() or {}


def save_state(state: dict, path: Path) -> None:
    """Optimizer state, counters and RNG states: tensors and plain values only."""
    _atomic(path, lambda tmp: torch.save(state, tmp))


def load_state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def save_json(data: dict, path: Path) -> None:
    _atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=1)))
