"""Training steps/s and posters/s of the GAN loop at each size, on synthetic posters (the real loop, a temp run).

    python bench/gan_throughput.py [--sizes 32x48,64x96,128x192] [--batch 32] [--steps 30]

Sampling speed (posters/s from a run's EMA generator) is printed too.
"""

import argparse
import tempfile
import time
from pathlib import Path

from lab.data.synthetic import make_synthetic_posters
from lab.generation.sampling import sample_to_folder
from lab.gan.options import GanOptions
from lab.gan.train import train_gan
from lab.runs import Run


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="32x48,64x96,128x192")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=30)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            w, h = map(int, size.split("x"))
            data = make_synthetic_posters(Path(tmp) / f"posters-{size}", 400, size=(w, h))
            opts = GanOptions(data=str(data), size=size, batch_size=args.batch, steps=args.steps,
                              log_every=args.steps, grid_every=args.steps, checkpoint_every=args.steps)
            run = Run.create(Path(tmp) / f"run-{size}", "", vars(opts).copy())
            start = time.perf_counter()
            train_gan(opts, run, progress=False)
            seconds = time.perf_counter() - start
            record = run.metrics()[-1]
            start = time.perf_counter()
            sample_to_folder(run.path, ["Horror"], ["1990"], 256, 0, Path(tmp) / f"samples-{size}")
            sampling = 256 / (time.perf_counter() - start)
            print(f"{size:>8}  batch {args.batch}: {args.steps / seconds:5.2f} steps/s (with start-up), "
                  f"{record['posters_per_s']:7.1f} training posters/s, sampling {sampling:7.1f} posters/s (PNG writing included)")


if __name__ == "__main__":
    main()
