"""Does `lab ensemble`'s weight fit (coordinate ascent on validation macro mAP) find the best weights? It is
checked against every point of a grid over the weights' simplex, on the same validation readings.

    python bench/ensemble_weights.py runs/ENSEMBLE [--step 0.05]

It reads the ensemble run's saved validation readings (`val-readings/`, each member at its chosen size and
views) and the validation posters' genres; no network runs and no test poster is read. It prints each
member's chosen reading, the fit's weights and validation macro mAP (refitted, and as recorded), and the
best point of the grid with its figure. A grid of step 1/n over m members has C(n + m - 1, m - 1) points.
"""

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from lab.classifier.ensemble_run import fit_weights, load_reading, reading_path
from lab.classifier.inference import load_run_info
from lab.classifier.metrics import macro_map
from lab.data.filters import PosterFilter
from lab.data.poster_dataset import open_run_posters
from lab.runs import Run


def simplex(members: int, steps: int):
    """Every weight vector of `members` non-negative multiples of 1/steps that sum to 1."""
    for head in itertools.product(range(steps + 1), repeat=members - 1):
        if sum(head) <= steps:
            yield np.array([*head, steps - sum(head)]) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="an ensemble run folder made with val-readings/")
    parser.add_argument("--step", type=float, default=0.05, help="the grid's step (default 0.05)")
    args = parser.parse_args()
    info = json.loads((args.run / "ensemble.json").read_text())
    members = info["models"]["classifier"]["members"]
    first = load_run_info(members[0]["run"])
    posters = open_run_posters(Run.open(args.run), tuple(info["size"]), PosterFilter.from_dict(first["filter"]),
                               progress=False)
    truth = posters.genre_matrix[posters.parts["val"]]
    scores = []
    for k, member in enumerate(members):
        (width, height), views = member["size"], member["views"]
        reading = load_reading(reading_path(args.run, k, member["size"], views))
        scores.append(reading["genres"])
        print(f"member {k} {Path(member['run']).name} at {width}x{height}, views {'+'.join(views) or 'none'}: "
              f"val macro mAP {macro_map(reading['genres'], truth):.4f}")

    def score(weights) -> float:
        return macro_map(sum(w * s for w, s in zip(weights, scores)), truth)

    start = time.perf_counter()
    fitted = fit_weights(scores, truth)
    fit_seconds = time.perf_counter() - start
    print(f"fit:  weights {fitted}, val macro mAP {score(fitted):.5f} ({fit_seconds:.1f} s); recorded "
          f"{[m['weight'] for m in members]}, {info['models']['classifier']['val_macro_map']:.5f}")
    start, points = time.perf_counter(), list(simplex(len(scores), round(1 / args.step)))
    best = max(points, key=score)
    print(f"grid: best of {len(points)} points at step {args.step}: weights {best.round(4).tolist()}, "
          f"val macro mAP {score(best):.5f} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
