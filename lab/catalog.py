"""`list_runs`: every run under a folder, with its kind, status, progress, latest headline figure and age.

A run is finished (finished.json), running (another process holds its lock), failed (failed.json,
with the one-line reason its trainer stopped on) or interrupted (none of these: killed, or stopped
with Ctrl-C; `--resume` continues it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError
from lab.kinds import kind_of, options_of
from lab.runs import Run


@dataclass
class RunStatus:
    path: Path
    kind: str
    status: str  # finished, running, failed, interrupted, or damaged (its files cannot be read)
    reason: str = ""  # why it failed, or what is damaged
    progress: str = ""  # "step 1200/3000" or "epoch 3/9"
    headline: str = ""  # its kind's headline figure, last logged
    age: float = 0.0  # seconds since it last wrote anything
    precision: str = ""  # what it trains in, as its options.json records it (runs from before: "auto")

    @property
    def age_text(self) -> str:
        """The age as people read it: "42 s", "5 min", "3 h", "2 d"."""
        for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
            if self.age >= size:
                return f"{self.age / size:.0f} {unit}"
        return f"{self.age:.0f} s"


def list_runs(folder: Path) -> list[RunStatus]:
    folder = Path(folder)
    if not folder.is_dir():
        raise LabError(f"{folder} is not a folder of runs")
    return [run_status(p) for p in sorted(folder.iterdir()) if (p / "options.json").is_file()]


def run_status(path: Path) -> RunStatus:
    try:
        run = Run.open(path)
        kind = kind_of(path)
        options = options_of(run)
        records = run.metrics()
        failed = run.failed
    except LabError as e:
        return RunStatus(path, "?", "damaged", str(e), age=_age(path))
    if run.finished:
        status = "finished"
    elif run.is_locked_elsewhere():
        status = "running"
    else:
        status = "failed" if failed else "interrupted"
    last = next((r for r in reversed(records) if "step" in r or "epoch" in r), {})
    if "epoch" in last:
        progress = f"epoch {last['epoch']}" + (f"/{options.epochs}" if hasattr(options, "epochs") else "")
    elif "step" in last:
        progress = f"step {last['step']}" + (f"/{options.steps}" if hasattr(options, "steps") else "")
    else:
        progress = ""
    headline = ""
    if kind.headline:
        value = next((r[kind.headline] for r in reversed(records) if kind.headline in r), None)
        if value is not None:
            headline = f"{kind.headline} {value:.4g}"
    precision = getattr(options, "mixed_precision", "")
    return RunStatus(path, kind.name, status, failed["reason"] if failed and status == "failed" else "",
                     progress, headline, _age(path), "fp32" if precision == "no" else precision)


def _age(path: Path) -> float:
    newest = max((p.stat().st_mtime for p in path.rglob("*") if p.is_file()), default=path.stat().st_mtime)
    return time.time() - newest


def format_runs(runs: list[RunStatus]) -> str:
    if not runs:
        return "no runs"
    lines = [f"{'run':<40}{'kind':<12}{'precision':<11}{'status':<13}{'progress':<18}{'headline':<26}{'age':>8}"]
    for r in runs:
        lines.append(f"{r.path.name[:39]:<40}{r.kind:<12}{r.precision:<11}{r.status:<13}{r.progress:<18}"
                     f"{r.headline:<26}{r.age_text:>8}" + (f"\n    {r.reason}" if r.reason else ""))
    return "\n".join(lines)

