"""Inference posters/s of a trained classifier run on its test posters (cached pixels, batch 64: fastest on this CPU).

    python bench/classifier_throughput.py RUN_DIR

Training posters/s per epoch are in the run's metrics.jsonl (train_posters_per_s).
"""

import argparse
import time

import torch

from lab.classifier.inference import load_model, load_run_info
from lab.classifier.train import predict
from lab.data.filters import PosterFilter
from lab.data.poster_dataset import open_run_posters
from lab.runs import Run


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args()
    run, info = Run.open(args.run), load_run_info(args.run)
    posters = open_run_posters(run, tuple(info["size"]), PosterFilter.from_dict(info["filter"]), progress=False)
    test = posters.dataset("test")
    model = load_model(args.run, info)
    start = time.perf_counter()
    with torch.inference_mode():
        predict(model, test, args.batch)
    seconds = time.perf_counter() - start
    print(f"{len(test)} posters at {info['size'][0]}x{info['size'][1]}, {torch.get_num_threads()} threads: "
          f"{len(test) / seconds:.0f} posters/s inference")


if __name__ == "__main__":
    main()
