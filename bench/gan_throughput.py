"""Training steps/s and posters/s of the GAN loop at each size, on synthetic posters (the real loop, a temp run).

    python bench/gan_throughput.py [--sizes 32x48,64x96,128x192] [--batch 32] [--steps 30] [--channels 32]
        [--precisions fp32,bf16]

Sampling speed (posters/s from a run's EMA generator) is printed too. Each size runs in each precision,
one after the other in this process, so the two are measured side by side on the same machine.
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
from lab.training import use_precision


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="32x48,64x96,128x192")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--channels", type=int, default=GanOptions.channels)
    p.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16, auto")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            w, h = map(int, size.split("x"))
            data = make_synthetic_posters(Path(tmp) / f"posters-{size}", 400, size=(w, h))
            for precision in args.precisions.split(","):
                use_precision(precision)  # sampling's precision; training's is the run's mixed_precision
                opts = GanOptions(data=str(data), size=size, batch_size=args.batch, steps=args.steps,
                                  channels=args.channels, mixed_precision=precision, log_every=args.steps,
                                  grid_every=args.steps, checkpoint_every=args.steps)
                run = Run.create(Path(tmp) / f"run-{size}-{precision}", "", vars(opts).copy())
                start = time.perf_counter()
                train_gan(opts, run, progress=False)
                seconds = time.perf_counter() - start
                record = run.metrics()[-1]
                start = time.perf_counter()
                sample_to_folder(run.path, ["Horror"], ["1990"], 256, 0, Path(tmp) / f"samples-{size}-{precision}")
                sampling = 256 / (time.perf_counter() - start)
                print(f"{size:>8} {precision:>5} batch {args.batch} channels {args.channels}: "
                      f"{args.steps / seconds:5.2f} steps/s (with start-up), {record['posters_per_s']:7.1f} training "
                      f"posters/s, sampling {sampling:7.1f} posters/s (PNG writing included)")


if __name__ == "__main__":
    main()
