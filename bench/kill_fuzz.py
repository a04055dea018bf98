"""Kill anywhere, resume anywhere: SIGKILL small real training runs at random moments and resume them.

For each trainer (classifier, GAN, diffusion) this trains a small run on synthetic posters once without
interruption, then again while killing it: each launch (the first start, then every
`lab train-... --out RUN --resume`) is SIGKILLed at a random moment of its remaining life (the
imports, the data loading, a training step, a checkpoint being written), or, one launch in three,
the moment a checkpoint write has begun (its temporary file appears). The trainer alone is killed,
as `kill -9 PID` does: its data loader workers outlive it for a moment. After every kill the run's
checkpoints must load; every resume must run without an error until it is killed in turn; the last
one runs to the end. A run that ends before all kills are spent is compared with the uninterrupted
one and a new run is started. Compared: every deterministic metric of metrics.jsonl (losses,
validation mAP; not times or speeds) and the final weights.

    python bench/kill_fuzz.py                       # 20 kills per trainer, the README's table
    python bench/kill_fuzz.py --trainer gan --kills 3 --quick --json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab.checkpoint import load_state  # noqa: E402
from lab.data.synthetic import make_synthetic_posters  # noqa: E402
from lab.errors import LabError  # noqa: E402
from lab.runs import Run  # noqa: E402

# Small real runs: minutes for 20 kills on one CPU core. Checkpoints often, so kills land in writes.
GAN_RECIPE = dict(size="32x48", channels=8, z_dim=16, batch_size=16, steps=240, checkpoint_every=10, log_every=10,
                  grid_every=120, seed=5)
CLASSIFIER_RECIPE = dict(size="32x48", backbone="mobilenet_v2", schedule=[[1, 0.0], [2, 1.0]], ema=0.9,
                         batch_size=8, checkpoint_every=5, baselines=False, patience=5, seed=5)
DIFFUSION_RECIPE = dict(size="32x48", channels=8, multipliers=[1, 2], layers_per_block=1, batch_size=8, steps=120,
                        checkpoint_every=10, log_every=10, grid_every=60, grid_steps=4, seed=5)
RECIPES = {"gan": GAN_RECIPE, "classifier": CLASSIFIER_RECIPE, "diffusion": DIFFUSION_RECIPE}
QUICK = {"gan": dict(steps=60), "classifier": dict(backbone="cnn4", schedule=[[1, 1.0]]), "diffusion": dict(steps=40)}
FINAL_WEIGHTS = {"gan": "checkpoints/g_ema.safetensors", "classifier": "checkpoints/best.safetensors",
                 "diffusion": "checkpoints/denoiser_ema.safetensors"}
VERB = {"gan": "train-gan", "classifier": "train-classifier", "diffusion": "train-diffusion"}
WEIGHT_TOLERANCE = 1e-5  # max |difference| of any final weight between a killed run and the whole one
METRIC_TOLERANCE = 1e-4  # metrics are logged rounded to 4 decimals


@dataclass
class Tally:
    trainer: str
    kills: int = 0
    kills_mid_write: int = 0  # kills that left a checkpoint's temporary file behind: cut off mid-write
    resumes: int = 0
    clean_resumes: int = 0
    restarts: int = 0  # first starts killed before the run folder held anything: started again, not resumed
    runs_finished: int = 0
    equal_finals: int = 0  # metrics and final weights equal the uninterrupted run's
    equal_weights: int = 0  # final weights equal, whatever the metrics
    checkpoints_unreadable: int = 0
    differences: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainer", choices=[*RECIPES, "all"], default="all")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs per trainer")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--quick", action="store_true", help="shorter runs (for the test suite)")
    parser.add_argument("--work", type=Path, help="folder for data and runs (default: a temporary one)")
    parser.add_argument("--json", action="store_true", help="also print the tallies as one JSON line")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="kill-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "posters"
    if not (data / "metadata.csv").is_file():
        make_synthetic_posters(data, 240, seed=1, size=(32, 48))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LAB_CACHE": str(work / "cache"), "PYTHONUNBUFFERED": "1"}
    rng = random.Random(args.seed)
    tallies = []
    for trainer in (["classifier", "gan", "diffusion"] if args.trainer == "all" else [args.trainer]):
        recipe = work / f"{trainer}.toml"
        options = {**RECIPES[trainer], **(QUICK[trainer] if args.quick else {})}
        recipe.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in options.items()))
        tallies.append(fuzz(trainer, data, recipe, work / trainer, args.kills, rng, env))
    print(f"{'trainer':<11}{'kills':>6}{'mid-write':>11}{'clean resumes':>15}{'restarts':>10}{'runs':>6}"
          f"{'equal finals':>14}{'equal weights':>15}{'unreadable ckpts':>18}")
    for t in tallies:
        print(f"{t.trainer:<11}{t.kills:>6}{t.kills_mid_write:>11}{f'{t.clean_resumes}/{t.resumes}':>15}"
              f"{t.restarts:>10}{t.runs_finished:>6}{f'{t.equal_finals}/{t.runs_finished}':>14}"
              f"{f'{t.equal_weights}/{t.runs_finished}':>15}{t.checkpoints_unreadable:>18}")
        for line in t.differences + t.failures:
            print(f"  {t.trainer}: {line}")
    if args.json:
        print(json.dumps([asdict(t) for t in tallies]))


def fuzz(trainer: str, data: Path, recipe: Path, work: Path, kills: int, rng: random.Random, env: dict) -> Tally:
    tally = Tally(trainer)
    start = [sys.executable, "-m", "lab.cli", VERB[trainer], "--data", str(data), "--recipe", str(recipe)]
    if trainer == "classifier":
        start.append("--no-pretrained")
    whole = work / "whole"
    if not (whole / FINAL_WEIGHTS[trainer]).is_file():
        started = time.perf_counter()
        _run_to_end(start + ["--out", str(whole)], env, tally, "the uninterrupted run")
        print(f"{trainer}: uninterrupted run {time.perf_counter() - started:.1f} s", file=sys.stderr)
    lifetime = _lifetime(whole)
    for old in work.glob("killed-*"):
        shutil.rmtree(old)
    n_run = 0
    while tally.kills < kills:
        out = work / f"killed-{n_run:02d}"
        n_run += 1
        finished = False
        while tally.kills < kills and not finished:
            resume = (out / "options.json").is_file()
            command = start + ["--out", str(out)] if not resume else [*start[:4], "--out", str(out), "--resume"]
            left = lifetime * (1 - _progress(trainer, out, recipe)) + 6  # + the imports and the data loading
            proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            at_write = rng.random() < 1 / 3
            killed = _kill_at_write(proc, out, left) if at_write else _kill_after(proc, rng.uniform(0, left))
            stderr = proc.stderr.read().decode(errors="replace")
            proc.stderr.close()
            if killed:
                tally.kills += 1
                tally.kills_mid_write += bool(_partial_writes(out))
            clean = _clean(killed, proc.returncode, stderr)
            if not clean:
                tally.failures.append(f"{' '.join(command[3:])} exited {proc.returncode}: {stderr.strip()[-300:]}")
            if resume:
                tally.resumes += 1
                tally.clean_resumes += clean
            elif killed and not (out / "options.json").is_file():
                tally.restarts += 1
            tally.checkpoints_unreadable += _unreadable_checkpoints(out, tally)
            finished = not killed
        if not finished:  # the last kill: this run's resume goes to the end
            tally.resumes += 1
            tally.clean_resumes += _run_to_end([*start[:4], "--out", str(out), "--resume"], env, tally,
                                               f"the last resume of {out.name}")
        tally.runs_finished += 1
        metrics_equal, weights_equal = _compare(trainer, whole, out, tally)
        tally.equal_finals += metrics_equal and weights_equal
        tally.equal_weights += weights_equal
    return tally


def _clean(killed: bool, returncode: int, stderr: str) -> bool:
    """A launch went as it should: killed while running, or ended well, or refused a run that had finished."""
    errors = [line for line in stderr.splitlines() if "error: " in line or "Traceback" in line]
    if len(errors) == 1 and "finished training" in errors[0]:  # said so, then exited or was killed exiting
        return returncode in (2, -signal.SIGKILL)
    return (killed or returncode == 0) and not errors


def _run_to_end(command: list[str], env: dict, tally: Tally, what: str) -> bool:
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    clean = _clean(False, result.returncode, result.stderr)
    if not clean:
        tally.failures.append(f"{what} failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    return clean


def _lifetime(run: Path) -> float:
    """Seconds the uninterrupted run spent after making its folder, to its last metrics record."""
    times = [r["time"] for r in Run(run).metrics()]
    started = (run / "options.json").stat().st_mtime
    return max(times[-1] - started, 1.0) if times else 30.0


def _progress(trainer: str, run: Path, recipe: Path) -> float:
    """Share of the run its last checkpoint has done (0 with none)."""
    state = run / "checkpoints" / "state.pt"
    if not state.is_file():
        return 0.0
    try:
        saved = load_state(state)
    except LabError:
        return 0.0
    options = Run(run).options
    if trainer != "classifier":
        return saved["step"] / options["steps"]
    epochs = sum(e for e, _ in options["schedule"])
    return min(1.0, saved["epoch"] / epochs)


def _kill_after(proc: subprocess.Popen, seconds: float) -> bool:
    """SIGKILL the launch after `seconds`, unless it ends first."""
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        return _kill(proc)


def _kill_at_write(proc: subprocess.Popen, run: Path, seconds: float) -> bool:
    """SIGKILL the launch the moment a checkpoint's temporary file appears (or after `seconds`)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if _partial_writes(run):
            return _kill(proc)
        time.sleep(0.0005)
    return _kill(proc)


def _kill(proc: subprocess.Popen) -> bool:
    """SIGKILL the trainer alone, as `kill -9 PID` would: its loader workers outlive it for a moment."""
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    return proc.returncode == -signal.SIGKILL


def _partial_writes(run: Path) -> list[Path]:
    folder = run / "checkpoints"
    try:
        return [folder / n for n in os.listdir(folder) if ".tmp" in n]
    except FileNotFoundError:
        return []


def _unreadable_checkpoints(run: Path, tally: Tally) -> int:
    """Checkpoints left by a kill that do not load (each one named in the tally's failures)."""
    bad = 0
    for path in sorted((run / "checkpoints").glob("*")) if (run / "checkpoints").is_dir() else []:
        try:
            if path.name == "state.pt":
                load_state(path)
            elif path.suffix == ".safetensors":
                load_file(path)
        except Exception as e:  # noqa: BLE001 - any failure to load is what is counted
            bad += 1
            tally.failures.append(f"{path} does not load after a kill: {str(e).splitlines()[0]}")
    return bad


def _deterministic(record: dict) -> dict:
    """A metrics record without what depends on the machine's speed."""
    return {k: v for k, v in record.items() if k != "time" and not k.endswith(("_per_s", "seconds"))}


def _compare(trainer: str, whole: Path, killed: Path, tally: Tally) -> tuple[bool, bool]:
    """(metrics equal, final weights equal) of the killed run against the uninterrupted one; each
    difference is named in the tally."""
    try:
        a = [_deterministic(r) for r in Run(whole).metrics()]
        b = [_deterministic(r) for r in Run(killed).metrics()]
        wa = load_file(whole / FINAL_WEIGHTS[trainer])
        wb = load_file(killed / FINAL_WEIGHTS[trainer])
    except Exception as e:  # noqa: BLE001 - a final that cannot be read is a difference
        tally.differences.append(f"{killed.name}: cannot read its final ({str(e).splitlines()[0]})")
        return False, False
    equal = True
    if len(a) != len(b):
        tally.differences.append(f"{killed.name}: {len(b)} metrics records, the whole run has {len(a)}")
        equal = False
    for ra, rb in zip(a, b):
        for key in sorted(set(ra) | set(rb)):
            va, vb = ra.get(key), rb.get(key)
            if isinstance(va, (int, float)) and isinstance(vb, (int, float)):
                same = abs(va - vb) <= METRIC_TOLERANCE
            else:
                same = va == vb
            if not same:
                where = ", ".join(f"{k} {ra[k]}" for k in ("model", "epoch", "step") if k in ra)
                tally.differences.append(f"{killed.name}: {key} at {where}: {vb} against {va} uninterrupted")
                equal = False
    worst = max((float((wa[k].float() - wb[k].float()).abs().max()) for k in wa if k in wb), default=0.0)
    weights_equal = set(wa) == set(wb) and worst <= WEIGHT_TOLERANCE
    if not weights_equal:
        tally.differences.append(f"{killed.name}: final weights differ by up to {worst:.3g}")
    return equal, weights_equal


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
