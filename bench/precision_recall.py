"""How many posters precision/recall (k = 3) need, and what a collapsed set scores, on real posters.

    TORCH_HOME=../shared/torch-home python bench/precision_recall.py --data ../shared/posters

Features of 300 posters of one condition by the lab's extractor: 100 stand in for a perfect generator,
the other 200 are the real reference. Prints precision and recall (mean +- std over 10 draws) for
equal-sized subsets of both, then a collapsed "generator": one of the 100 repeated with faint noise.
"""

import argparse
import csv
from pathlib import Path

import numpy as np

from lab.data.images import decode_poster
from lab.scoring.features import image_features
from lab.scoring.fidelity import precision_recall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a dataset folder (metadata.csv, images/)")
    parser.add_argument("--genre", default="Horror", help="the condition's genre")
    parser.add_argument("--decade", type=int, default=2000, help="the condition's decade, e.g. 2000")
    parser.add_argument("--extractor", default="mobilenet_v2", help="feature extractor, as in score-samples")
    args = parser.parse_args()
    with open(args.data / "metadata.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if args.genre in r["genres"].split("|")
                and int(r["year"]) // 10 * 10 == args.decade]
    if len(rows) < 300:
        raise SystemExit(f"{args.genre}, {args.decade}s has {len(rows)} posters; this needs 300")
    picked = [rows[k] for k in sorted(np.random.default_rng(0).choice(len(rows), 300, replace=False))]
    pixels = np.stack([decode_poster(args.data / r["image"], (64, 96)) for r in picked])
    features = image_features(pixels, args.extractor)
    fake, real = features[:100], features[100:]
    print(f"{args.genre}, {args.decade}s, {args.extractor} features: real posters against other real ones")
    print(f"{'n vs n':>8}{'precision':>16}{'recall':>16}")
    for n in (4, 6, 10, 15, 20, 30, 50, 100):
        figures = []
        for draw in range(10 if n < 100 else 1):
            rng = np.random.default_rng(draw)
            figures.append(precision_recall(fake[rng.choice(100, n, replace=False)],
                                            real[rng.choice(200, n, replace=False)]))
        (p, r), (sp, sr) = np.mean(figures, 0), np.std(figures, 0)
        print(f"{n:>8}{p:>10.2f} ± {sp:.2f}{r:>10.2f} ± {sr:.2f}")
    noisy = pixels[:1].astype(np.float32) + np.random.default_rng(0).normal(0, 3, (100,) + pixels.shape[1:])
    collapsed = image_features(noisy.clip(0, 255).astype(np.uint8), args.extractor)
    print("against all 200 real: 100 other real posters: precision {:.2f} recall {:.2f}".format(
        *precision_recall(fake, real)))
    print("                      one poster 100 times with faint noise: precision {:.2f} recall {:.2f}".format(
        *precision_recall(collapsed, real)))


if __name__ == "__main__":
    main()
