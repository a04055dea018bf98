"""What a perfect generator would score: every metric of `lab score-samples` for real training posters
given as "samples", against real test posters, at the sizes and numbers the lab uses.

    TORCH_HOME=../shared/torch-home python bench/score_floors.py --classifier RUN [--sizes 32x48,64x96] [-n 800]

RUN is a classifier run with its baselines (its scratch CNN gives the feature space with no ImageNet
in it, and its split says which posters are training and test posters). Prints, per size:
FID/KID/precision/recall on the standard Inception (or MobileNetV2 where it is not installed), the
same on the scratch CNN's features, the memorised share of test posters, and the CAS ratio of real
training posters against other real training posters (about 1.0).
"""

import argparse
import time
from pathlib import Path

import numpy as np

from lab.classifier.inference import load_run_info
from lab.data.images import parse_size
from lab.data.poster_dataset import open_run_posters
from lab.errors import LabError
from lab.runs import Run
from lab.scoring.cas import classification_accuracy_score
from lab.scoring.extractors import INDEPENDENT, choose_extractor
from lab.scoring.features import image_features
from lab.scoring.fidelity import fidelity
from lab.scoring.memorisation import memorisation, thumbnails


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classifier", type=Path, required=True, help="a classifier run with its baselines")
    p.add_argument("--sizes", default="32x48,64x96")
    p.add_argument("-n", type=int, default=800, help="posters in each set")
    p.add_argument("--cas-n", type=int, default=2000, help="posters each CAS arm trains on")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    try:
        load_run_info(args.classifier)
        label, name, weights = choose_extractor("auto", None, args.classifier)
        run = Run.open(args.classifier)
        for size in args.sizes.split(","):
            floors(run, parse_size(size), label, name, weights, args)
    except LabError as e:
        raise SystemExit(f"error: {e}") from None


def floors(run: Run, size, label: str, name: str, weights, args) -> None:
    started = time.perf_counter()
    posters = open_run_posters(run, size, progress=False)
    rng = np.random.default_rng(args.seed)
    train, val, test = (posters.parts[p] for p in ("train", "val", "test"))
    n = min(args.n, len(test))
    fake, real = np.sort(rng.choice(train, n, replace=False)), np.sort(rng.choice(test, n, replace=False))
    spaces = {label: (name, weights), INDEPENDENT: (INDEPENDENT, str(run.path))}
    figures = {}
    parts = {"train": train, "val": val, "test": test}
    points = {part: {"pixels": thumbnails(posters.images[rows])} for part, rows in parts.items()}
    for space, (extractor, path) in spaces.items():
        f = image_features(posters.images[fake], extractor, path, cache=True)
        r = image_features(posters.images[real], extractor, path, cache=True)
        figures[space] = fidelity(f, r, seed=args.seed)
        if space == INDEPENDENT:
            for part, rows in parts.items():
                points[part][space] = image_features(posters.images[rows], extractor, path, cache=True)
    memo = memorisation(points["test"], points["train"], points["val"], points["test"])
    cas_n = min(args.cas_n, len(train) // 2)
    drawn = rng.permutation(train)
    arm_a, arm_b = np.sort(drawn[:cas_n]), np.sort(drawn[cas_n:2 * cas_n])

    def arm(rows):
        return posters.images[rows], posters.genre_matrix[rows], posters.decade_index[rows]

    cas = classification_accuracy_score(arm(arm_a), arm(arm_b), arm(test), len(posters.decades), seed=args.seed)
    w, h = size
    print(f"\n{w}x{h}: {n} real training posters as samples against {n} real test posters "
          f"({time.perf_counter() - started:.0f} s)")
    for space, f in figures.items():
        kind = "FID" if space == label else "FD"
        print(f"  {kind}[{space}] {f['fid']:.2f}   KID {f['kid']:.4f} ± {f['kid_std']:.4f}   "
              f"precision {f['precision']:.2f}   recall {f['recall']:.2f}")
    print(f"  memorised: {memo['real_test_share']:.1%} of {len(test)} real test posters ({memo['rule']})")
    print(f"  CAS ({cas['n']} real training posters against {cas['n']} others, tested on {cas['n_test']}): macro mAP "
          f"{cas['generated']['macro_map']:.3f} / {cas['real']['macro_map']:.3f} (chance {cas['chance']['macro_map']:.3f}), "
          f"ratio {cas['map_ratio']:.2f}; decade accuracy {cas['generated']['decade_acc']:.3f} / "
          f"{cas['real']['decade_acc']:.3f}, ratio {cas['decade_ratio']:.2f}")


if __name__ == "__main__":
    main()
