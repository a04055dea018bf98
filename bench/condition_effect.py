"""How much the asked-for condition changes a generator's posters, against how much the noise does.

    python bench/condition_effect.py runs/RUN/samples/DIR [DIR ...]

Reads a folder written by `lab sample` from a conditional run, where every condition gets the same
noises. Prints the mean absolute pixel difference (0-255) between posters made from the same noise for
different conditions (what tells the rows of a grid apart), the same between posters of one condition
made from different noises (what tells its columns apart), and their ratio: near 0, every row of a
grid is the same poster whatever was asked for.
"""

import argparse
import itertools
from pathlib import Path

import numpy as np

from lab.errors import LabError
from lab.generation.samples import read_samples


def condition_effect(samples_dir: Path) -> tuple[float, float]:
    summary, pixels = read_samples(samples_dir)
    if not summary.get("conditional", True):
        raise LabError(f"{samples_dir}: an unconditional run draws other noise for every condition")
    n = summary["n"]
    slots: dict = {}  # condition -> the position of each noise's poster in `pixels`
    for k, image in enumerate(summary["images"]):
        slots.setdefault((tuple(image["genres"]), image["decade"]), [0] * n)[image["index"]] = k
    grid = pixels.astype(np.float32)[np.array(list(slots.values()))]  # (conditions, noises, H, W, 3)
    across_conditions = np.mean([np.abs(grid[a] - grid[b]).mean()
                                 for a, b in itertools.combinations(range(len(grid)), 2)])
    shifted = np.roll(np.arange(n), 1)  # each poster against the next noise's, same condition
    across_noises = np.mean([np.abs(g - g[shifted]).mean() for g in grid])
    return float(across_conditions), float(across_noises)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", type=Path, nargs="+", help="folders written by `lab sample`")
    args = parser.parse_args()
    try:
        effects = [condition_effect(samples_dir) for samples_dir in args.samples]
    except LabError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"{'same noise, other condition':>28}{'same condition, other noise':>29}{'ratio':>7}  samples")
    for samples_dir, (conditions, noises) in zip(args.samples, effects):
        print(f"{conditions:28.1f}{noises:29.1f}{conditions / noises:7.2f}  {samples_dir}")


if __name__ == "__main__":
    main()
