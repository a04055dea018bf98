"""Does the poster add to genre and decade? On a classifier run's test split: Spearman of the rating the
run predicts told the true genres and decade, against the genre+decade regression alone, with a paired
bootstrap of the difference (the same resampled posters for both).
    TORCH_HOME=../shared/torch-home python bench/rating_gain.py runs/00002-classifier-full
"""

from __future__ import annotations

import argparse

import numpy as np

from lab.classifier.baselines import genre_decade_ratings
from lab.classifier.inference import load_model, load_run_info
from lab.classifier.metrics import spearman
from lab.classifier.train import predict
from lab.data.filters import PosterFilter
from lab.data.poster_dataset import open_run_posters
from lab.runs import Run


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--resamples", type=int, default=1000)
    args = p.parse_args()
    run, info = Run.open(args.run), load_run_info(args.run)
    posters = open_run_posters(run, tuple(info["size"]), PosterFilter.from_dict(info["filter"]), progress=False)
    rows = posters.parts["test"]
    predicted = predict(load_model(args.run, info), posters.dataset("test"), 64, progress=True)["rating_given"]
    by_labels = genre_decade_ratings(info, posters.genre_matrix[rows], posters.decade_index[rows])
    truth = posters.ratings[rows]
    known = ~np.isnan(truth)
    a, b, t = predicted[known], by_labels[known], truth[known]
    rng = np.random.default_rng(0)
    gains = []
    for _ in range(args.resamples):
        k = rng.integers(0, len(t), len(t))
        gains.append(spearman(a[k], t[k]) - spearman(b[k], t[k]))
    low, high = np.percentile(gains, [2.5, 97.5])
    print(f"{len(t)} rated test posters: Spearman told genres+decade {spearman(a, t):.3f}, genre+decade alone "
          f"{spearman(b, t):.3f}; gain {spearman(a, t) - spearman(b, t):.3f} (paired bootstrap, {args.resamples} "
          f"resamples: 95% interval {low:.3f} to {high:.3f})")


if __name__ == "__main__":
    main()
