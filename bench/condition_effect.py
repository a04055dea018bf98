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
import json
from pathlib import Path

import numpy as np
from PIL import Image


def condition_effect(samples_dir: Path) -> tuple[float, float]:
    summary = json.loads((samples_dir / "samples.json").read_text())
    if not summary.get("conditional", True):
        raise SystemExit(f"{samples_dir}: an unconditional run draws other noise for every condition")
    n = summary["n"]
    by_condition: dict = {}
    for image in summary["images"]:
        key = (tuple(image["genres"]), image["decade"])
        by_condition.setdefault(key, [None] * n)[image["index"]] = samples_dir / image["file"]
    # (conditions, noises, H, W, 3)
    pixels = np.stack([np.stack([np.asarray(Image.open(f), dtype=np.float32) for f in files])
                       for files in by_condition.values()])
    across_conditions = np.mean([np.abs(pixels[a] - pixels[b]).mean()
                                 for a, b in itertools.combinations(range(len(pixels)), 2)])
    shifted = np.roll(np.arange(n), 1)  # each poster against the next noise's, same condition
    across_noises = np.mean([np.abs(p - p[shifted]).mean() for p in pixels])
    return float(across_conditions), float(across_noises)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", type=Path, nargs="+", help="folders written by `lab sample`")
    args = parser.parse_args()
    effects = [condition_effect(samples_dir) for samples_dir in args.samples]
    print(f"{'same noise, other condition':>28}{'same condition, other noise':>29}{'ratio':>7}  samples")
    for samples_dir, (conditions, noises) in zip(args.samples, effects):
        print(f"{conditions:28.1f}{noises:29.1f}{conditions / noises:7.2f}  {samples_dir}")


if __name__ == "__main__":
    main()
