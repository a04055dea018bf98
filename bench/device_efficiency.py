"""How much of the machine the lab's loops use: each loop's FLOP rate against the device's matmul peak.

    TORCH_HOME=../shared/torch-home python bench/device_efficiency.py --data ../shared/posters
        [--precisions fp32,bf16] [--classifier RUN] [--steps 40] [--decade 1950s] [--extractor-images 64]

In each precision it measures:
- the peak: a square matmul (2048 on a CPU, 8192 on a GPU), GFLOPS;
- each training loop of a shipped recipe, run for real in a temporary run through `lab.launch.train`
  (data, augmentation, weight averages, logging): the classifier (classifier-full, its last stage, on the
  posters of --decade), the GAN (gan-64x96 and gan-reference), the diffusion model (diffusion-quick) and the
  upsampler (upsampler-64x96). Posters/s come from the run's metrics.jsonl, the last log window or epoch,
  so start-up is not counted. FLOPs per poster are counted by `torch.utils.flop_counter` over the same
  loop: for a generator, two short runs --count-steps apart (their start and final grid cancel); for the
  classifier, one training step of its model on a batch;
- scoring's extractors on real posters at 32x48 (the demo generator's size): the standard Inception (fp32
  in every precision, as the lab scores it), MobileNetV2, and with --classifier a run's scratch CNN.

Each line: posters/s, GFLOP per poster, GFLOPS achieved, and the share of that precision's peak and of the bf16
peak, with the thread count. The matmul, convolution and attention FLOPs are what flop_counter counts;
elementwise work is not, so a share is of the matrix units' work.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from lab.classifier.model import GenreClassifier, genre_loss, label_vector, rating_loss
from lab.classifier.options import ClassifierOptions
from lab.data.filters import PosterFilter
from lab.data.images import parse_size
from lab.data.poster_dataset import open_posters
from lab.launch import train
from lab.recipes import read_recipe, shipped_path
from lab.scoring.extractors import INCEPTION, INDEPENDENT, MOBILENET, choose_extractor, inception_torchscript
from lab.scoring.features import image_features
from lab.training import make_accelerator, use_precision

GENERATORS = (("gan", "gan-64x96"), ("gan", "gan-reference"), ("diffusion", "diffusion-quick"),
              ("upsampler", "upsampler-64x96"))
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                        _output_padding, _groups, output_mask, out_shape, **kwargs) -> int:
    """Each gradient of a convolution costs its forward's multiply-adds. flop_counter's own formula ignores
    `groups`, so it counts MobileNetV2's depthwise backward as dense (20x its forward at 160x240)."""
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed=transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def counted(work) -> int:
    """FLOPs of `work()`, as flop_counter counts them, with grouped convolutions' backward counted right."""
    with FlopCounterMode(display=False,
                         custom_mapping={torch.ops.aten.convolution_backward: conv_backward_flops}) as counter:
        work()
    return counter.get_total_flops()


def matmul_peak(precision: str) -> float:
    """GFLOPS of a square matmul in `precision` on the device, over about a second after a warm-up."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    n = 8192 if device == "cuda" else 2048
    a, b = (torch.randn(n, n, device=device, dtype=DTYPES[precision]) for _ in range(2))
    for _ in range(3):
        a @ b
    sync()
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < 1.0:
        a @ b
        reps += 1
    sync()
    return 2 * n ** 3 * reps / (time.perf_counter() - start) / 1e9


def quiet(flags: dict) -> dict:
    """A bench run's flags: no checkpoints or grids on the way."""
    return {**flags, "checkpoint_every": 10 ** 9, "grid_every": 10 ** 9}


def generator_loop(kind: str, recipe: str, data: str, precision: str, steps: int, count_steps: int,
                   tmp: Path) -> tuple[float, float, dict]:
    """(posters/s, FLOPs per poster, options) of a generator recipe's real training loop."""
    flags = quiet({"data": data, "mixed_precision": precision})
    name = f"{recipe}-{precision}"
    run, _ = train(kind, recipe=shipped_path(recipe), out=tmp / name, progress=False,
                   flags={**flags, "steps": steps, "log_every": max(1, steps // 2)})
    posters_per_s = [m for m in run.metrics() if "posters_per_s" in m][-1]["posters_per_s"]
    opts = json.loads((run.path / "options.json").read_text())
    flops = [counted(lambda: train(kind, recipe=shipped_path(recipe), out=tmp / f"{name}-{n}", progress=False,
                                   flags={**flags, "steps": n, "log_every": n}))
             for n in (1, 1 + count_steps)]
    return posters_per_s, (flops[1] - flops[0]) / (count_steps * opts["batch_size"]), opts


def classifier_step_flops(opts: ClassifierOptions, n_genres: int, n_decades: int) -> float:
    """FLOPs per poster of one training step of the classifier's model as its last stage trains it."""
    accelerator = make_accelerator(opts.mixed_precision)
    model = GenreClassifier(opts.backbone, n_genres, n_decades, opts.weights, taps=opts.taps, rating=True)
    model.set_trainable(opts.schedule[-1][1])
    model = accelerator.prepare(model)
    device, b = accelerator.device, opts.batch_size
    w, h = parse_size(opts.size)
    images = torch.randint(0, 256, (b, 3, h, w), device=device).float().contiguous(memory_format=torch.channels_last)
    genres = (torch.rand(b, n_genres, device=device) < 0.2).float()
    decades = torch.randint(0, n_decades, (b,), device=device)
    given = torch.ones(2, b, dtype=torch.bool, device=device)
    labels = label_vector(genres, decades, n_decades, given[0], given[1])

    def step():
        genre_logits, decade_logits, rating = model(images, labels)
        loss = (genre_loss(genre_logits, genres, torch.ones(n_genres, device=device))
                + F.cross_entropy(decade_logits.float(), decades)
                + rating_loss(rating, torch.full((b,), 6.0, device=device), torch.tensor([6.0, 1.0], device=device)))
        accelerator.backward(loss)

    return counted(step) / b


def classifier_loop(data: str, decade: list[str], precision: str, epochs: int, tmp: Path) -> tuple[float, float, dict]:
    """(posters/s, FLOPs per poster, options) of classifier-full's last stage, its real loop."""
    recipe = read_recipe(shipped_path("classifier-full"), ClassifierOptions)
    flags = {"data": data, "decade": decade, "schedule": [[epochs, recipe["schedule"][-1][1]]], "baselines": False,
             "patience": epochs, "checkpoint_every": 10 ** 9, "mixed_precision": precision}
    run, info = train("classifier", recipe=shipped_path("classifier-full"), flags=flags,
                      out=tmp / f"classifier-{precision}", progress=False)
    opts = ClassifierOptions(**{k: v for k, v in json.loads((run.path / "options.json").read_text()).items()
                                if k in ClassifierOptions.__dataclass_fields__})
    posters_per_s = [m for m in run.metrics() if "train_posters_per_s" in m][-1]["train_posters_per_s"]
    return posters_per_s, classifier_step_flops(opts, len(info["genres"]), len(info["decades"])), vars(opts)


def extractor_rates(data: str, n: int, classifier: str | None) -> dict:
    """{label: (images/s, FLOPs per image)} of scoring's extractors on n real posters at 32x48."""
    pixels = open_posters(data, PosterFilter(), (32, 48), progress=False).images[:n]
    extractors = {MOBILENET: (MOBILENET, None)}
    if inception_torchscript() is not None:
        label, name, weights = choose_extractor(INCEPTION, None, Path(classifier or "."))
        extractors[label] = (name, weights)
    if classifier:
        extractors[INDEPENDENT] = (INDEPENDENT, classifier)
    rates = {}
    for label, (name, weights) in extractors.items():
        image_features(pixels[:2], name, weights)  # loads and warms it
        start = time.perf_counter()
        image_features(pixels, name, weights)
        seconds = time.perf_counter() - start
        rates[label] = (n / seconds, counted(lambda: image_features(pixels[:16], name, weights)) / 16)
    return rates


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="dataset folder (../shared/posters)")
    p.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16")
    p.add_argument("--classifier", help="a classifier run with baselines: its scratch CNN is measured too")
    p.add_argument("--decade", action="append", help="the classifier's posters (default: the 1950s, 356 posters)")
    p.add_argument("--classifier-epochs", type=int, default=2, help="real-loop epochs; the last one is timed")
    p.add_argument("--steps", type=int, default=40, help="real-loop steps of each generator; the last half is timed")
    p.add_argument("--count-steps", type=int, default=2, help="generator steps whose FLOPs are counted")
    p.add_argument("--extractor-images", type=int, default=64, help="posters each extractor reads")
    p.add_argument("--only", help="comma-separated loops to measure (classifier, the recipes' names, extractors)")
    args = p.parse_args()
    only = set(args.only.split(",")) if args.only else None

    def wanted(name):
        return only is None or name in only

    precisions = args.precisions.split(",")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    peaks = {precision: matmul_peak(precision) for precision in sorted({*precisions, "bf16"})}
    print(f"device: {device}, {torch.get_num_threads()} threads, torch {torch.__version__}; matmul peak: "
          + ", ".join(f"{p} {g:,.0f} GFLOPS" for p, g in peaks.items()), flush=True)
    print("| loop | precision | size | batch | posters/s | GFLOP/poster | GFLOPS | share of its peak "
          "| share of bf16 peak |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")

    def row(name, precision, size, batch, per_s, flops):
        rate = per_s * flops / 1e9
        print(f"| {name} | {precision} | {size} | {batch} | {per_s:,.1f} | {flops / 1e9:.3f} | {rate:,.1f} "
              f"| {rate / peaks[precision]:.1%} | {rate / peaks['bf16']:.1%} |", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for precision in precisions:
            use_precision(precision)
            if wanted("classifier"):
                per_s, flops, opts = classifier_loop(args.data, args.decade or ["1950s"], precision,
                                                     args.classifier_epochs, tmp)
                row("classifier-full", precision, opts["size"], opts["batch_size"], per_s, flops)
            for kind, recipe in GENERATORS:
                if wanted(recipe):
                    per_s, flops, opts = generator_loop(kind, recipe, args.data, precision, args.steps,
                                                        args.count_steps, tmp)
                    row(recipe, precision, opts["size"], opts["batch_size"], per_s, flops)
            if wanted("extractors"):
                for label, (per_s, flops) in extractor_rates(args.data, args.extractor_images,
                                                             args.classifier).items():
                    row(f"extractor {label}", "fp32" if label == INCEPTION else precision, "32x48", 16, per_s, flops)
    use_precision("auto")


if __name__ == "__main__":
    main()
