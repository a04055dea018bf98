"""What every training loop shares: seeded random generators, the accelerate setup and the weight average."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
from pathlib import Path

import torch
from accelerate import Accelerator, DataLoaderConfiguration, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration, broadcast_object_list
from torch import nn

from lab.errors import LabError
from lab.runs import Run


def seeded(*parts) -> torch.Generator:
    """A generator seeded by its name: the same parts give the same draws, in any process, after a resume."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "bf16", "fp32")
MIXED_PRECISIONS = (*PRECISIONS, "no", "fp16")  # a recipe's mixed_precision: also accelerate's own names
TRACKERS = ("tensorboard",)
# What --device, --precision and --log-with asked for, in this process.
_choice = {"device": "auto", "precision": "auto", "tracker": None}


def use_device(name: str) -> None:
    """Where everything computes from now on: auto (cuda, else mps, else cpu), cpu, cuda or mps."""
    if name not in DEVICES:
        raise LabError(f"--device must be one of {', '.join(DEVICES)}, not {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise LabError("--device cuda: this machine has no CUDA device that torch can use")
    if name == "mps" and not torch.backends.mps.is_available():
        raise LabError("--device mps: this machine has no Apple-silicon GPU that torch can use")
    _choice["device"] = name


def use_precision(name: str) -> None:
    """The precision of everything computed from now on: auto (`auto_precision`), bf16 or fp32. A run's
    training takes its own from its options (`mixed_precision`), which --precision sets."""
    if name not in PRECISIONS:
        raise LabError(f"--precision must be one of {', '.join(PRECISIONS)}, not {name!r}")
    _choice["precision"] = name


def has_fast_bf16(kind: str) -> bool:
    """Whether the device does bf16 matrix work in hardware, by torch's own checks: a CUDA GPU with bf16, a
    Mac whose MPS has it, a CPU with AMX or AVX-512-BF16. Elsewhere bf16 is emulated, slower than fp32."""
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if kind == "mps":
        return torch.backends.mps.is_available() and torch.backends.mps.is_macos_or_newer(14, 0)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # x86 checks; other CPUs: False
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


def auto_precision(kind: str | None = None) -> str:
    """'bf16' where the device does it in hardware (`has_fast_bf16`), else 'fp32'."""
    return "bf16" if has_fast_bf16(kind or device_kind()) else "fp32"


def resolve_precision(asked: str = "auto") -> str:
    """What a run or a command computes in: 'bf16', 'fp32' (or 'fp16', a GPU's). 'auto' is --precision where
    it was given, else `auto_precision`; accelerate's 'no' is fp32."""
    if asked == "auto":
        asked = _choice["precision"]
    if asked == "auto":
        return auto_precision()
    return "fp32" if asked == "no" else asked


def inference_precision(device: torch.device):
    """The autocast of inference (predict, features, sampling) on `device`, in the chosen precision."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=resolve_precision() == "bf16")


def use_tracker(name: str | None) -> None:
    """Also log every run's metrics to one of accelerate's trackers (None: metrics.jsonl only)."""
    if name is not None and name not in TRACKERS:
        raise LabError(f"--log-with must be one of {', '.join(TRACKERS)}, not {name!r}")
    if name == "tensorboard" and importlib.util.find_spec("tensorboard") is None \
            and importlib.util.find_spec("tensorboardX") is None:
        raise LabError("--log-with tensorboard needs the tensorboard package: pip install tensorboard")
    _choice["tracker"] = name


def device_kind() -> str:
    """'cuda', 'mps' or 'cpu': what --device chose, auto resolved."""
    if _choice["device"] != "auto":
        return _choice["device"]
    if torch.cuda.is_available():
        return "cuda"
    return "mps" if torch.backends.mps.is_available() else "cpu"


def make_accelerator(mixed_precision: str = "auto", grad_accum: int = 1, *,
                     unused_parameters: bool = False, run: Run | None = None) -> Accelerator:
    """`mixed_precision` is a run's: auto, bf16, fp32 (also accelerate's no and fp16); see `resolve_precision`.

    `unused_parameters`: some parameters get no gradient in some steps (blocks frozen part of the
    time); several processes then need DDP to look for them, or they wait for each other for ever.
    With a tracker chosen (`use_tracker`) and a `run`, the accelerator logs into RUN/tensorboard too
    (see `Run.log_metrics`).
    """
    kind = device_kind()
    mixed_precision = resolve_precision(mixed_precision)
    mixed_precision = "no" if mixed_precision == "fp32" else mixed_precision
    # accelerate keeps one precision per process; a process that trains runs one after another (a demo, a
    # notebook, the tests) may train them in different ones. The process group (PartialState) stays.
    if AcceleratorState._shared_state.get("_mixed_precision", mixed_precision) != mixed_precision:
        AcceleratorState._reset_state()
    kwargs = [DistributedDataParallelKwargs(find_unused_parameters=True)] if unused_parameters else []
    tracking = {}
    if _choice["tracker"] and run is not None:
        tracking = {"log_with": _choice["tracker"],
                    "project_config": ProjectConfiguration(project_dir=str(run.path),
                                                           logging_dir=str(run.path / "tensorboard"))}
    # Batches come from pinned memory on a GPU, so their copies need not wait for the device.
    accelerator = Accelerator(cpu=kind == "cpu", mixed_precision=mixed_precision,
                              gradient_accumulation_steps=grad_accum,
                              dataloader_config=DataLoaderConfiguration(non_blocking=kind == "cuda"),
                              kwargs_handlers=kwargs, **tracking)
    if tracking:
        accelerator.init_trackers("lab")
        run.tracker = accelerator
    return accelerator


def create_run(out: Path | None, name: str, options: dict, *, resume: bool = False) -> Run:
    """`Run.create` for a training command, however many processes `accelerate launch` started.

    The main process creates (or reopens) the folder, and the others open the folder it made, so a
    run is one folder, numbered once, whatever the launch. A refusal reaches every process, so none
    of them waits for the others for ever.
    """
    # cpu=True where there is no GPU: several processes then share the work over gloo.
    state = PartialState(cpu=device_kind() == "cpu")
    if state.num_processes == 1:
        return Run.create(out, name, options, resume=resume)
    made = [None]
    if state.is_main_process:
        try:
            made = [str(Run.create(out, name, options, resume=resume).path)]
        except LabError as e:
            made = [("error", str(e))]
    broadcast_object_list(made)
    if isinstance(made[0], tuple):
        raise LabError(made[0][1])
    return Run(Path(made[0]))


def default_workers() -> int:
    """Loader processes: with a GPU, what the machine has (less one core for the training process).

    Without one, none: the cores are busy computing, and a batch is one read of the image cache
    (about 3,000 posters/s at 160x240 in the training process, 100 times what a CPU trains on).
    """
    return max(0, min(8, (os.cpu_count() or 1) - 1)) if torch.cuda.is_available() else 0


def inference_device() -> torch.device:
    """Where commands outside a training run (predict, sample, score) put their models (see `use_device`)."""
    return torch.device(device_kind())


class WeightAverage:
    """An exponential moving average of a model's weights, kept as a model of its own.

    It follows its model wherever that goes: every tensor of the average lives on the model's device,
    in the model's dtype, also after the model was moved (by accelerate's `prepare`, say) or loaded.
    Parameters are averaged in one fused call. Buffers (batch-norm statistics) are copied from the
    model, or averaged too with `average_buffers`; integer buffers are always copied.
    """

    def __init__(self, model: nn.Module, *, average_buffers: bool = False):
        self.source, self.average_buffers = model, average_buffers
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self._where, self._averaged, self._copied = None, ([], []), ([], [])

    def _follow(self) -> None:
        """Pair the average's tensors with the model's again after the model moved or changed dtype."""
        first = next(iter(self.source.parameters()))
        where = (first.device, first.dtype, first.data_ptr())
        if where == self._where:
            return
        self.model.to(first)
        pairs = list(zip(self.model.parameters(), self.source.parameters()))
        buffers = list(zip(self.model.buffers(), self.source.buffers()))
        averaged = [(a, b) for a, b in buffers if self.average_buffers and a.is_floating_point()]
        self._averaged = ([a for a, _ in pairs + averaged], [b for _, b in pairs + averaged])
        copied = [(a, b) for a, b in buffers if not (self.average_buffers and a.is_floating_point())]
        self._copied = ([a for a, _ in copied], [b for _, b in copied])
        self._where = where

    @torch.no_grad()
    def update(self, decay: float) -> None:
        self._follow()
        torch._foreach_lerp_(*self._averaged, 1 - decay)
        if self._copied[0]:
            torch._foreach_copy_(*self._copied)

    @property
    def averaged(self) -> nn.Module:
        """The averaged model (eval mode), where its model is now."""
        self._follow()
        return self.model

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Loads into the average's own tensors: a state saved on the CPU comes back on the model's device."""
        self.model.load_state_dict(state)
