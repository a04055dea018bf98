"""The generators behind `lab sample`: which one a run folder holds, told by its run file."""

from __future__ import annotations

from pathlib import Path

from lab.diffusion.train import RUN_FILE as DIFFUSION_FILE
from lab.errors import LabError
from lab.gan.train import RUN_FILE as GAN_FILE
from lab.runs import Run

RUN_FILES = {"gan": GAN_FILE, "diffusion": DIFFUSION_FILE}


def generator_kind(run_dir: Path) -> str:
    """'gan' or 'diffusion'; any other folder is a one-line error."""
    Run.open(run_dir)
    for kind, run_file in RUN_FILES.items():
        if (Path(run_dir) / run_file).is_file():
            return kind
    raise LabError(f"{run_dir} is not a generator run (no {' or '.join(RUN_FILES.values())}); "
                   "give a run of `lab train-gan` or `lab train-diffusion`")


def sample_run(run_dir: Path, genres: list[str] | None, decades: list[str] | None, n: int, seed: int,
               out: Path | None = None, *, steps: int | None = None, guidance: float | None = None,
               sampler: str | None = None) -> tuple[Path, dict]:
    """The samples folder of either generator; `steps`, `guidance` and `sampler` are for diffusion runs."""
    if generator_kind(run_dir) == "diffusion":
        from lab.diffusion.sample import sample_run as sample_diffusion
        return sample_diffusion(run_dir, genres, decades, n, seed, out, steps=steps, guidance=guidance,
                                sampler=sampler)
    given = [flag for flag, value in (("--steps", steps), ("--guidance", guidance), ("--sampler", sampler))
             if value is not None]
    if given:
        raise LabError(f"{', '.join(given)}: for diffusion runs only; {run_dir} is a GAN run")
    from lab.gan.sample import sample_run as sample_gan
    return sample_gan(run_dir, genres, decades, n, seed, out)
