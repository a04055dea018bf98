"""Run folders: every run in its own numbered folder with its options, log and metrics.

`runs/00003-gan-horror-1980s/` holds options.json, log.txt, metrics.jsonl, split.json,
checkpoints and samples. Any command that reads a run takes its folder.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

from lab.errors import LabError

DEFAULT_ROOT = Path("runs")


def next_run_dir(name: str, root: Path = DEFAULT_ROOT) -> Path:
    """Create and return root/NNNNN-name, NNNNN one past the highest number there."""
    root.mkdir(parents=True, exist_ok=True)
    while True:
        numbers = [int(m[1]) for p in root.iterdir() if (m := re.match(r"(\d{5})-", p.name))]
        path = root / f"{max(numbers, default=-1) + 1:05d}-{name}"
        try:
            path.mkdir()  # atomic: two runs starting at once cannot take the same number
            return path
        except FileExistsError:
            continue


class Run:
    """An open run folder: options, a log file and a metrics JSONL."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, out: Path | None, name: str, options: dict, *, resume: bool = False) -> Run:
        """A new run in `out` (default: the next numbered folder under runs/), or `out` again with resume."""
        if out is None:
            if resume:
                raise LabError("--resume needs --out RUN_DIR, the run to continue")
            path = next_run_dir(name)
        else:
            path = Path(out)
            if resume and not (path / "options.json").is_file():
                raise LabError(f"cannot resume: {path} is not a run folder (no options.json)")
            if not resume and path.exists() and any(path.iterdir()):
                raise LabError(f"{path} is not empty; choose another --out, or add --resume to continue it")
            path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        if not resume:
            (path / "options.json").write_text(json.dumps(options, indent=2, default=str))
        run.start_log()
        return run

    @classmethod
    def open(cls, path: Path) -> Run:
        if not (Path(path) / "options.json").is_file():
            raise LabError(f"{path} is not a run folder (no options.json)")
        return cls(path)

    @property
    def options(self) -> dict:
        return json.loads((self.path / "options.json").read_text())

    def start_log(self) -> None:
        """Log into this run's log.txt from now on (and no longer into another run's, in the same process)."""
        logger = logging.getLogger("lab")
        for old in [h for h in logger.handlers if getattr(h, "lab_run", False)]:
            logger.removeHandler(old)
            old.close()
        handler = logging.FileHandler(self.path / "log.txt")
        handler.lab_run = True
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)

    def log_metrics(self, record: dict) -> None:
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")

    def metrics(self) -> list[dict]:
        path = self.path / "metrics.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []
