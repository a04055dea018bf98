"""A run's files: written whole or not at all, and read back validated.

Checkpoints cannot run code: weights are safetensors, training state is loaded weights-only.
Every file is written to a temporary name, flushed to disk and renamed, and the folder is flushed
too, so a kill, a power cut or a full disk never leaves half a file, and the previous version stays
until the new one is complete. Reading
back, a missing, torn or foreign file is a one-line LabError that names it, says what is wrong and
what to do; a damaged weights file falls back to its twin (best/last, or the copy in state.pt)
with a warning.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import pickle
import warnings
from pathlib import Path

import torch
from safetensors.torch import load, save

from lab.errors import LabError

log = logging.getLogger(__name__)
STATE_FILE = "state.pt"
# A damaged weights file is replaced, with a warning, by its twin in the same folder.
TWINS = {"best.safetensors": "last.safetensors", "last.safetensors": "best.safetensors"}
# The key in state.pt that holds a weights file's weights, where it is not the file's own name: the
# classifier keeps its last weights there as "model".
STATE_KEYS = {"last": "model"}
RETRAIN = "retrain the run, or restore the file from a copy"


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole: a temporary file, fsync'd, then renamed over the old one.

    A full disk or an unwritable folder is a LabError, and the previous `path` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        sync_folder(path.parent)
    except OSError as e:
        todo = (f"the previous {path.name} is intact: free some space or make the folder writable, then resume"
                if path.exists() else "free some space or make the folder writable, or choose another --out")
        raise LabError(f"cannot write {path}: {e.strerror or e}; {todo}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable: until the folder itself is flushed, a power cut can undo it.
    Systems that cannot open a folder (Windows) flush renames as they make them."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse to flush a folder; the rename itself has happened
    finally:
        os.close(fd)


def remove_partial_writes(folder: Path) -> list[Path]:
    """Delete what writes cut off by a kill left behind (`*.tmp<pid>`); only for a folder this process owns."""
    stale = [p for p in Path(folder).rglob("*.tmp*") if p.suffix[4:].isdigit() and p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def save_weights(module: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    write_atomic(path, save(state, metadata=metadata))


def load_weights(module: torch.nn.Module, path: Path) -> dict[str, str]:
    """Load into `module`; returns the file's metadata (e.g. the training step it was saved at).

    A missing or damaged file falls back, with a warning, to its twin: best <-> last, or the same
    weights kept in the folder's state.pt (g, d, g_ema); without one it is a LabError.
    """
    path = Path(path)
    try:
        return _load_weights(module, path)
    except _Damaged as damage:
        for twin, read in _twins(path):
            try:
                metadata = read(module)
            except _Damaged:
                continue
            log.warning("%s; using %s instead", damage, twin)
            return metadata
        raise LabError(f"{damage}: {RETRAIN}") from None


class _Damaged(Exception):
    """A file that cannot be read as what it should be; str() says which and why."""


def _load_weights(module: torch.nn.Module, path: Path) -> dict[str, str]:
    if not path.is_file():
        raise _Damaged(f"checkpoint {path} is missing")
    try:
        data = path.read_bytes()
        weights = load(data)
        # The header (8 bytes of length, then JSON) holds the metadata; load() has just validated it.
        metadata = json.loads(data[8:8 + int.from_bytes(data[:8], "little")]).get("__metadata__") or {}
    except Exception as e:  # safetensors reports every kind of damage with its own error type
        raise _Damaged(f"checkpoint {path} is damaged ({_first_line(e)})") from None
    _fit(module, weights, path)
    return metadata


def _fit(module: torch.nn.Module, weights: dict, path: Path) -> None:
    try:
        module.load_state_dict(weights)
    except RuntimeError as e:  # other layer names or shapes: another model, or an older lab's layout
        raise LabError(f"checkpoint {path} does not fit this model ({_first_line(e)}); "
                       "it was made by another model or another version of the lab") from None


def _twins(path: Path):
    """(file, loader) pairs that hold the weights of `path` too, the closest first."""
    if path.name in TWINS:
        twin = path.with_name(TWINS[path.name])
        yield twin, lambda module: _load_weights(module, twin)
    state = path.with_name(STATE_FILE)
    if state.is_file():
        def from_state(module):
            try:
                saved = load_state(state)
            except LabError:
                raise _Damaged(str(state)) from None
            key = STATE_KEYS.get(path.stem, path.stem)
            if not isinstance(saved.get(key), dict):
                raise _Damaged(f"{state} holds no {path.stem}")
            _fit(module, saved[key], state)
            return {"step": str(saved["step"])} if "step" in saved else {}
        yield state, from_state


def save_state(state: dict, path: Path) -> None:
    """Optimizer state, counters and RNG states: tensors and plain values only."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())


def load_state(path: Path) -> dict:
    """A training state written by save_state; anything else (damaged, or a pickle that would run
    code, which is never run) is a one-line LabError naming the file."""
    path = Path(path)
    restart = "delete it and resume to start the run again from its beginning, or restore the file from a copy"
    try:
        with warnings.catch_warnings():  # torch warns about the protocol of a foreign pickle it then refuses
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise LabError(f"training state {path} is missing; resume starts the run from its beginning") from None
    except pickle.UnpicklingError as e:
        if "Weights only load failed" in str(e):
            raise LabError(f"training state {path} holds objects that would run code when loaded (refused; "
                           f"nothing was run): it was not written by the lab; {restart}") from None
        raise LabError(f"training state {path} is damaged ({_first_line(e)}); {restart}") from None
    except Exception as e:  # truncated or scrambled: torch reports each kind with its own error type
        raise LabError(f"training state {path} is damaged ({_first_line(e) or type(e).__name__}); {restart}") from None
    if not isinstance(state, dict):
        raise LabError(f"training state {path} is not a training state (a {type(state).__name__}); {restart}")
    return state


def save_json(data: dict, path: Path) -> None:
    write_atomic(path, json.dumps(data, indent=1).encode())


def read_json(path: Path, what: str, remedy: str) -> dict:
    """A JSON object the lab wrote (`what` names it for people); missing, torn or not an object is a
    one-line LabError that ends with `remedy`."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise LabError(f"{what} {path} is missing; {remedy}") from None
    except (OSError, ValueError) as e:  # ValueError: bad JSON or bad UTF-8
        raise LabError(f"{what} {path} is damaged ({_first_line(e)}); {remedy}") from None
    if not isinstance(data, dict):
        raise LabError(f"{what} {path} is damaged (a JSON {type(data).__name__}, not an object); {remedy}")
    return data


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__
