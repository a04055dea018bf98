"""Run folders: every run in its own numbered folder with its options, log and metrics.

`runs/00003-gan-horror-1980s/` holds options.json, log.txt, metrics.jsonl, split.json,
checkpoints and samples. Any command that reads a run takes its folder.

A training process holds its run folder's lock (a POSIX lock on RUN/.lock) for as long as it lives,
so a second trainer on the same folder is refused, and a killed one leaves no lock behind: the OS
drops the lock with the process, and the process's children (data loader workers) never hold it. Every command
that opens a run first checks the run's JSON files, so a damaged one is a one-line error that says
how to get it back.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path

from lab.checkpoint import read_json, remove_partial_writes, save_json
from lab.errors import LabError

try:
    import fcntl
except ImportError:  # Windows: run folders are not locked there
    fcntl = None

DEFAULT_ROOT = Path("runs")
FINISHED_FILE = "finished.json"
FAILED_FILE = "failed.json"
LOCK_FILE = ".lock"
log = logging.getLogger(__name__)
_held_locks: dict[str, int] = {}  # run folder -> descriptor whose flock this process holds until it exits


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
        self.tracker = None  # an accelerator whose trackers get every metrics record too (--log-with)

    @classmethod
    def create(cls, out: Path | None, name: str, options: dict, *, resume: bool = False) -> Run:
        """A new run in `out` (default: the next numbered folder under runs/), or `out` again with resume.

        Either way the folder is locked for this process: another process training it is refused.
        """
        try:
            if out is None:
                if resume:
                    raise LabError("--resume needs --out RUN_DIR, the run to continue")
                path = next_run_dir(name)
            else:
                path = Path(out)
                if resume and not path.is_dir():
                    raise LabError(f"cannot resume: {path} is not a run folder (it does not exist)")
                if resume and not (path / "options.json").is_file():
                    raise LabError(f"cannot resume: {path} is not a run folder (no options.json); if its first "
                                   "start was killed before it wrote anything, start it again without --resume")
                if not resume and path.exists() and any(p.name != LOCK_FILE for p in path.iterdir()):
                    raise LabError(f"{path} is not empty; choose another --out, or add --resume to continue it")
                path.mkdir(parents=True, exist_ok=True)
            run = cls(path)
            run._lock()
            if resume:
                run.check_files()
                run._finished_check()
                run._repair_after_kill()
                (path / FAILED_FILE).unlink(missing_ok=True)
            else:
                save_json(options, path / "options.json")
            run.start_log()
        except OSError as e:
            raise LabError(f"cannot write the run folder {out or DEFAULT_ROOT}: {e.strerror or e}; "
                           "choose another --out, or free some space") from None
        return run

    @classmethod
    def open(cls, path: Path) -> Run:
        if not (Path(path) / "options.json").is_file():
            raise LabError(f"{path} is not a run folder (no options.json)")
        run = cls(path)
        run.check_files()
        return run

    @property
    def options(self) -> dict:
        return read_json(self.path / "options.json", "run options", _remedy("options.json", self.path))

    def check_files(self) -> None:
        """Every JSON file at the top of the run (options, split, the trainer's run file, evaluations)
        must parse: a torn or foreign one is a LabError naming it and how to write it again."""
        for path in sorted(self.path.glob("*.json")):
            read_json(path, "run file", _remedy(path.name, self.path))

    def _lock(self) -> None:
        """Hold the folder's lock until `release` or until this process exits (the OS drops it when the
        process dies).

        A POSIX lock rather than flock: forked children do not inherit it, so a killed trainer's
        orphaned loader workers cannot keep its run locked. Where the OS has no POSIX locks (Windows)
        the folder is not locked, and a warning says so once.
        """
        key = os.path.realpath(self.path)
        if key in _held_locks:
            return
        if fcntl is None:
            if not _held_locks:
                log.warning("this system has no POSIX file locks: nothing stops two processes training the "
                            "same run folder at once, so do not start one twice")
            _held_locks[key] = -1
            return
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise LabError(f"{self.path} is being trained by another process (pid {holder}, which holds the run's "
                           "lock); wait for it to end or stop it, or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _held_locks[key] = fd

    def release(self) -> None:
        """Let go of the folder's lock (when training returns): another process may train it now."""
        if self.tracker is not None:
            self.tracker.end_training()  # flushes and closes the trackers' files
            self.tracker = None
        fd = _held_locks.pop(os.path.realpath(self.path), None)
        if fd is not None and fd >= 0:
            os.close(fd)

    def is_locked_elsewhere(self) -> bool:
        """Whether another live process holds this folder's lock (is training it now)."""
        if fcntl is None or not (self.path / LOCK_FILE).is_file() or os.path.realpath(self.path) in _held_locks:
            return False
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # closing drops the lock this probe may have taken
        return False

    @property
    def started(self) -> bool:
        """Whether training wrote anything of its own yet (metrics or a checkpoint)."""
        return (self.path / "metrics.jsonl").is_file() or any(self.path.glob("checkpoints/*")) or \
            any(self.path.glob("*/checkpoints/*"))

    def fail(self, reason: str) -> None:
        """Record why training stopped, for `lab runs`; resuming the run clears it."""
        save_json({"time": time.strftime("%Y-%m-%d %H:%M:%S"), "reason": reason}, self.path / FAILED_FILE)

    @property
    def failed(self) -> dict | None:
        path = self.path / FAILED_FILE
        return read_json(path, "run file", _remedy(FAILED_FILE, self.path)) if path.is_file() else None

    @property
    def finished(self) -> dict | None:
        """When the run finished training (its FINISHED_FILE), or None while it has more to do."""
        path = self.path / FINISHED_FILE
        return read_json(path, "run file", _remedy(FINISHED_FILE, self.path)) if path.is_file() else None

    def finish(self) -> None:
        """Record that training ended, and which run files it left: resuming then has nothing to do."""
        (self.path / FAILED_FILE).unlink(missing_ok=True)
        files = sorted(p.name for p in self.path.glob("*.json") if p.name not in (FINISHED_FILE, FAILED_FILE))
        save_json({"time": time.strftime("%Y-%m-%d %H:%M:%S"), "files": files}, self.path / FINISHED_FILE)

    def _finished_check(self) -> None:
        """A finished run is not resumed, unless a run file it had was deleted: resuming writes it again."""
        done = self.finished
        if done and all((self.path / f).is_file() for f in done.get("files", [])):
            raise LabError(f"{self.path} finished training at {done.get('time', '?')}; there is nothing to resume "
                           "(to train more, start a new run)")

    def _repair_after_kill(self) -> None:
        """Drop what a killed process left half-written: partial checkpoints and a torn last metrics line."""
        for stale in remove_partial_writes(self.path):
            log.info("removed %s, a write cut off by a kill", stale)
        path = self.path / "metrics.jsonl"
        if path.is_file():
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):
                keep = data.rfind(b"\n") + 1
                log.warning("%s ended in a torn line (%d bytes, cut off by a kill or a full disk); dropped it",
                            path, len(data) - keep)
                os.truncate(path, keep)

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
        path = self.path / "metrics.jsonl"
        try:
            with open(path, "a") as f:
                f.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")
        except OSError as e:
            raise LabError(f"cannot write {path}: {e.strerror or e}; free some space or make the folder writable, "
                           "then resume") from None
        if self.tracker is not None:
            figures = {k: v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                       and k not in ("step", "epoch")}
            name = record.get("model")
            self.tracker.log({f"{name}/{k}" if name else k: v for k, v in figures.items()},
                             step=record.get("step"))

    def metrics(self) -> list[dict]:
        """The records of metrics.jsonl along the run's one history.

        A torn last line (a kill or a full disk mid-write) is dropped with a warning. A resumed run
        writes again the records from its checkpoint on: those replace what the killed process had
        written past it (records of one `model` are ordered by `step`).
        """
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        lines = path.read_bytes().split(b"\n")
        records = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError(f"a JSON {type(record).__name__}")
            except ValueError as e:
                if number == len(lines):  # no newline after it: the write was cut off
                    log.warning("%s: dropped its torn last line (%d bytes)", path, len(line))
                    continue
                raise LabError(f"{path} line {number} is damaged ({str(e).splitlines()[0]}); "
                               "delete that line and the metrics read again") from None
            if "step" in record:
                records = [r for r in records if r.get("model") != record.get("model")
                           or r.get("step", -1) < record["step"]]
            records.append(record)
        return records


def _remedy(name: str, run_dir: Path) -> str:
    """What to do about a damaged run file, by what writes it."""
    if name == "options.json":
        return "the run's options are lost, so it cannot be resumed or read: train a new run"
    if name.startswith("evaluation-"):
        return f"delete it and run `lab evaluate {run_dir}` again"
    return (f"delete it and resume the run (the `lab train-... --out {run_dir} --resume` that trained it), "
            "which writes it again")
