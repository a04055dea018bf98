"""Samples folders side by side in one picture: each folder's posters a column block, the conditions in rows.

    python bench/side_by_side.py DIR [DIR ...] --out PNG [-n 8] [--scale 2]

Every folder must hold the same conditions (`lab sample` with the same --genre, --decade and -n); each row
shows one condition's first n posters from every folder, in the order given, with the condition named on the
left. For steered and unsteered samples of one generator made from one seed, the same noise stands in the
same column of each block.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from lab.errors import LabError
from lab.generation.condition import Condition
from lab.generation.samples import read_samples, save_grid

POSTER_GAP, BLOCK_GAP = 1, 8  # white pixels between two posters, and between two folders' blocks


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", type=Path, nargs="+", help="folders written by `lab sample`")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    p.add_argument("-n", type=int, default=8, help="posters of each condition from each folder (default 8)")
    p.add_argument("--scale", type=int, default=2, help="each poster's pixels enlarged this many times (default 2)")
    args = p.parse_args()
    try:
        read = [read_samples(folder) for folder in args.folders]
    except LabError as e:
        raise SystemExit(f"error: {e}") from None
    order = [Condition.from_dict(r) for r in read[0][0]["images"]]
    conditions = list(dict.fromkeys(order))
    rows = []
    for folder, (summary, pixels) in zip(args.folders, read):
        by_condition = {}
        for k, r in enumerate(summary["images"]):
            by_condition.setdefault(Condition.from_dict(r), []).append(pixels[k])
        if set(by_condition) != set(conditions) or min(len(v) for v in by_condition.values()) < args.n:
            raise SystemExit(f"error: {folder} does not hold the same conditions as {args.folders[0]} with at "
                             f"least {args.n} posters each")
        rows.append([by_condition[c][:args.n] for c in conditions])
    h = rows[0][0][0].shape[0]

    def joined(images, gap):  # side by side, a white strip of `gap` pixels between two
        strip = np.full((h, gap, 3), 255, np.uint8)
        return np.concatenate([part for im in images for part in (strip, im)][1:], 1)

    lines = [joined([joined(folder_rows[r], POSTER_GAP) for folder_rows in rows], BLOCK_GAP)
             for r in range(len(conditions))]
    wide = np.stack(lines).repeat(args.scale, 1).repeat(args.scale, 2)
    save_grid(wide, 1, args.out, row_labels=[c.label() for c in conditions])
    width, height = Image.open(args.out).size
    print(f"written: {args.out} ({width}x{height})")


if __name__ == "__main__":
    main()
