"""`start_run` and `train`: the life of a training run, the same from the CLI, the demo and the Python API.

Every check that can fail before training comes first (the recipe's keys and types, the options'
values, the dataset, the run to fine-tune from, the backbone's weights), so a mistake creates no
run folder. Then the folder is made, with the run's kind and options; training ends in
`finished.json`, or in `failed.json` with the one-line reason. A run that fails before it wrote
anything of its own (no checkpoint, no metrics) never started: its folder goes. The run folder's
lock is released when training returns, so a notebook can open the run at once.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict
from pathlib import Path

from lab.data.filters import PosterFilter
from lab.data.metadata import read_dataset
from lab.errors import LabError
from lab.kinds import KIND_KEY, RunKind, get, options_of
from lab.recipes import resolve_options
from lab.runs import Run
from lab.training import MIXED_PRECISIONS, create_run, resolve_precision

log = logging.getLogger(__name__)


def start_run(kind: str | RunKind, *, recipe: Path | None = None, flags: dict | None = None, out: Path | None = None,
              resume: bool = False):
    """(options, open and locked Run) for a new run, or for `out` again with `resume` (its own options)."""
    kind = get(kind) if isinstance(kind, str) else kind
    if resume:  # a silently ignored option would train another run than the one asked for
        given = [f"--{k.replace('_', '-')}" for k, v in (flags or {}).items() if v not in (None, [], ())]
        if given or recipe:
            raise LabError(f"--resume continues the run in {out} with its own options (its options.json); leave out "
                           f"{', '.join(given + (['--recipe'] if recipe else []))}")
        run = create_run(out, "", {}, resume=True)
        return options_of(run), run
    opts = resolve_options(kind.load("options"), recipe, flags or {})
    check(kind, opts)
    if hasattr(opts, "mixed_precision"):  # options.json records what the run computes in, not "auto"
        opts.mixed_precision = resolve_precision(opts.mixed_precision)
    if hasattr(opts, "data"):  # a run is read later from other folders: it records where its data is for good
        opts.data = str(Path(opts.data).resolve())
    name = kind.folder_name(opts)
    if hasattr(opts, "poster_filter"):
        name = f"{name}-{PosterFilter.from_options(opts.genre, opts.decade, opts.year_min, opts.year_max).slug()}"
    return opts, create_run(out, name, {KIND_KEY: kind.name, **asdict(opts)})


def check(kind: RunKind, opts) -> None:
    """Everything about `opts` that can be known wrong before a run folder exists."""
    if hasattr(opts, "data"):
        read_dataset(opts.data)
    opts.validate()
    if getattr(opts, "mixed_precision", "auto") not in MIXED_PRECISIONS:
        raise LabError(f"mixed_precision must be one of {', '.join(MIXED_PRECISIONS)}, not {opts.mixed_precision!r}")
    parent = getattr(opts, "init_from", None)
    if parent:
        Run.open(Path(parent))
        if not (Path(parent) / kind.run_file).is_file():
            raise LabError(f"--init-from {parent} is not a finished {kind.title} run (no {kind.run_file})")


def train(kind: str | RunKind, *, recipe: Path | None = None, flags: dict | None = None, out: Path | None = None,
          resume: bool = False, progress: bool = True, opts_and_run=None):
    """Start (or resume) a run and train it to the end; returns (Run, what its run file records).

    `opts_and_run` is what `start_run` returned, for a caller that had to know the folder first.
    """
    kind = get(kind) if isinstance(kind, str) else kind
    opts, run = opts_and_run or start_run(kind, recipe=recipe, flags=flags, out=out, resume=resume)
    try:
        info = kind.load("trainer")(opts, run, resume=resume, progress=progress)
    except BaseException as e:
        run.release()
        if not resume and not run.started:
            shutil.rmtree(run.path, ignore_errors=True)
            log.info("removed %s: the run stopped before it started (%s)", run.path, _one_line(e))
        elif not isinstance(e, KeyboardInterrupt):  # an interrupted run is one to resume, not a failure
            run.fail(_one_line(e))
        raise
    run.finish()
    run.release()
    return run, info


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:500]
