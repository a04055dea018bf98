"""Which `rating_min_votes`? Ridge regressions on frozen ImageNet MobileNetV2 features, fitted on the
training posters whose rating rests on at least N votes, scored on every rated validation poster.

Prints, per N, validation Spearman for the poster alone and for the stack (a ridge on genres and decade,
then the features fitted to what it leaves over), at three ridge strengths.
    TORCH_HOME=../shared/torch-home python bench/rating_min_votes.py --data ../shared/posters
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from lab.classifier.baselines import extract_features, ridge
from lab.classifier.metrics import spearman
from lab.classifier.model import GenreClassifier
from lab.data.poster_dataset import open_posters

ALPHAS = (1e2, 1e3, 1e4)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--size", default="96x144")
    p.add_argument("--votes", default="0,10,100,1000,5000")
    args = p.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    posters = open_posters(args.data, size=size, progress=False)
    model = GenreClassifier("mobilenet_v2", len(posters.genres), len(posters.decades), "IMAGENET1K_V1").eval()
    features = {part: extract_features(model, posters.dataset(part), 128, "cpu", progress=True).numpy().astype(np.float64)
                for part in ("train", "val")}
    mean, std = features["train"].mean(0), features["train"].std(0) + 1e-6
    x = {part: (f - mean) / std for part, f in features.items()}
    labels = {part: np.hstack([posters.genre_matrix[posters.parts[part]],
                               np.eye(len(posters.decades))[posters.decade_index[posters.parts[part]]]])
              for part in ("train", "val")}
    truth = posters.ratings[posters.parts["val"]]
    known = ~np.isnan(truth)
    for min_votes in map(int, args.votes.split(",")):
        y = posters.rating_targets(min_votes)[posters.parts["train"]].astype(np.float64)
        keep = ~np.isnan(y)
        w_labels, b_labels = ridge(labels["train"][keep], y[keep], 10.0)
        left_over = y[keep] - (labels["train"][keep] @ w_labels + b_labels)
        figures = []
        for alpha in ALPHAS:
            w, b = ridge(x["train"][keep], y[keep], alpha)
            w2, b2 = ridge(x["train"][keep], left_over, alpha)
            stacked = labels["val"] @ w_labels + b_labels + x["val"] @ w2 + b2
            figures.append(f"alpha {alpha:g}: alone {spearman((x['val'] @ w + b)[known], truth[known]):.3f}, "
                           f"stack {spearman(stacked[known], truth[known]):.3f}")
        print(f"min votes {min_votes:>5}: {keep.sum():>5} training ratings; " + "; ".join(figures), flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
