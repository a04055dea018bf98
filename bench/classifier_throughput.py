"""Inference images/s by batch size: a classifier run on its test posters, and scoring's feature extractors.

    TORCH_HOME=../shared/torch-home python bench/classifier_throughput.py RUN_DIR [--batches 8,16,32,64,128] [-n 256]
        [--precisions fp32,bf16]

For each batch size it times the run's classifier over its test posters (cached pixels, at the run's size),
then, on the first n of those posters at 32x48 (the demo generator's size), the extractors `lab score-samples`
uses: the standard Inception where installed and the run's scratch CNN. The lab's defaults are
lab.classifier.model.INFERENCE_BATCH and lab.scoring.features.FEATURE_BATCH.

Training posters/s per epoch are in the run's metrics.jsonl (train_posters_per_s).
"""

import argparse
import time

import torch

from lab.classifier.inference import load_model, load_run_info
from lab.classifier.model import INFERENCE_BATCH
from lab.classifier.train import predict
from lab.data.filters import PosterFilter
from lab.data.poster_dataset import open_run_posters
from lab.runs import Run
from lab.scoring.extractors import INDEPENDENT, choose_extractor
from lab.scoring.features import FEATURE_BATCH, image_features
from lab.training import use_precision


def timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a classifier run with its baselines (its scratch CNN is one of the extractors)")
    p.add_argument("--batches", default="8,16,32,64,128", help="comma-separated batch sizes")
    p.add_argument("-n", type=int, default=256, help="posters each feature extractor reads per batch size")
    p.add_argument("--precisions", default="fp32,bf16", help="comma-separated, each measured in turn: fp32, bf16, "
                                                             "auto (the standard Inception is fp32 in all)")
    args = p.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    run, info = Run.open(args.run), load_run_info(args.run)
    flt = PosterFilter.from_dict(info["filter"])
    test = open_run_posters(run, tuple(info["size"]), flt, progress=False).dataset("test")
    small = open_run_posters(run, (32, 48), flt, progress=False)
    pixels = small.images[small.parts["test"][:args.n]]
    model = load_model(args.run, info)
    label, name, weights = choose_extractor("auto", None, args.run)
    extractors = {label: (name, weights)}
    if INDEPENDENT in info["models"]:
        extractors[INDEPENDENT] = (INDEPENDENT, args.run)
    print(f"{torch.get_num_threads()} threads; lab defaults: classifier {INFERENCE_BATCH}, extractors {FEATURE_BATCH}")
    image_features(pixels[:2], name, weights)  # loads and warms the extractor once
    for precision in args.precisions.split(","):
        use_precision(precision)
        for batch in batches:
            with torch.inference_mode():
                seconds = timed(lambda: predict(model, test, batch))
            row = [f"{precision:>5} batch {batch:4d}: classifier {len(test) / seconds:6.0f}/s "
                   f"({info['size'][0]}x{info['size'][1]})"]
            for label, (name, weights) in extractors.items():
                seconds = timed(lambda: image_features(pixels, name, weights, batch_size=batch))
                row.append(f"{label} {len(pixels) / seconds:6.1f}/s")
            print(", ".join(row), flush=True)


if __name__ == "__main__":
    main()
