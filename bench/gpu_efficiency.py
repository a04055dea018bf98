"""How much of the device the training loops use: real loop posters/s against the bare model's.

    python bench/gpu_efficiency.py --data ../shared/posters [--decade 1950s] [--classifier-epochs 2] [--gan-steps 200]

For the classifier (recipes/classifier-full.toml at 160x240, its last stage: 60% of the backbone
trained, taps, weight average) and the GAN (recipes/gan-64x96.toml, or the -gpu recipes on a GPU),
it prints:
- posters/s through the real training loop (`train_classifier` / `train_gan` in a temporary run:
  data path, augmentation, EMA, logging, checkpoints), from the last epoch / log window so that
  start-up is not counted;
- posters/s of the bare model's forward+backward+optimizer step on tensors already on the device,
  in the same precision and memory format;
- the ratio of the two.
Both run on whatever device accelerate picks (a GPU where there is one). `--decade` keeps the
classifier's epochs short on a CPU (default there: the 1950s, 356 posters); on a GPU all posters are used.
"""

import argparse
import json
import tempfile
import time
import tomllib
from pathlib import Path

import torch
import torch.nn.functional as F

from lab.classifier.model import GenreClassifier, genre_loss, label_vector, rating_loss
from lab.classifier.options import ClassifierOptions
from lab.classifier.train import train_classifier
from lab.data.images import parse_size
from lab.gan.networks import build_discriminators, build_generator
from lab.gan.options import GanOptions
from lab.gan.train import train_gan
from lab.runs import Run
from lab.training import make_accelerator

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def recipe(name: str) -> dict:
    return tomllib.loads((RECIPES / name).read_text())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(step, batch: int, device: torch.device, warmup: int, iters: int) -> float:
    """Posters/s of `step` after `warmup` untimed calls."""
    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    sync(device)
    return iters * batch / (time.perf_counter() - start)


def classifier_real(data: str, decade: list[str], epochs: int, tmp: Path) -> tuple[float, ClassifierOptions]:
    cfg = recipe("classifier-full.toml")
    opts = ClassifierOptions(**{**cfg, "data": data, "decade": decade, "schedule": [[epochs, cfg["schedule"][-1][1]]],
                                "baselines": False, "patience": epochs, "checkpoint_every": 10**9})
    run = Run.create(tmp / "classifier", "", vars(opts).copy())
    train_classifier(opts, run, progress=False)
    return run.metrics()[-1]["train_posters_per_s"], opts


def classifier_bare(opts: ClassifierOptions, n_genres: int, n_decades: int, iters: int) -> float:
    accelerator = make_accelerator(opts.mixed_precision)
    model = GenreClassifier(opts.backbone, n_genres, n_decades, opts.weights, taps=opts.taps, rating=True)
    model.set_trainable(opts.schedule[-1][1])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=opts.backbone_lr)
    model, optimizer = accelerator.prepare(model, optimizer)
    device = accelerator.device
    w, h = parse_size(opts.size)
    images = torch.randint(0, 256, (opts.batch_size, 3, h, w), device=device).float()
    images = images.contiguous(memory_format=torch.channels_last)
    genres = (torch.rand(opts.batch_size, n_genres, device=device) < 0.2).float()
    decades = torch.randint(0, n_decades, (opts.batch_size,), device=device)
    pos_weight = torch.ones(n_genres, device=device)
    ratings = 1 + 9 * torch.rand(opts.batch_size, device=device)
    given = torch.rand(2, opts.batch_size, device=device) >= opts.label_dropout
    labels = label_vector(genres, decades, n_decades, given[0], given[1])
    scale = torch.tensor([6.0, 1.0], device=device)

    def step():
        genre_logits, decade_logits, rating = model(images, labels)
        loss = (genre_loss(genre_logits, genres, pos_weight) + F.cross_entropy(decade_logits.float(), decades)
                + opts.rating_weight * rating_loss(rating, ratings, scale))
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return timed(step, opts.batch_size, device, warmup=3, iters=iters)


def gan_real(data: str, gan_recipe: str, steps: int, tmp: Path) -> tuple[float, GanOptions]:
    log_every = max(1, steps // 2)
    opts = GanOptions(**{**recipe(gan_recipe), "data": data, "steps": steps, "log_every": log_every,
                         "grid_every": 10**9, "checkpoint_every": 10**9})
    run = Run.create(tmp / "gan", "", vars(opts).copy())
    train_gan(opts, run, progress=False)
    return run.metrics()[-1]["posters_per_s"], opts


def gan_bare(opts: GanOptions, n_genres: int, n_decades: int, iters: int) -> float:
    accelerator = make_accelerator(opts.mixed_precision)
    info = {"model": {"z_dim": opts.z_dim, "channels": opts.channels, "conditional": opts.conditional},
            "size": list(parse_size(opts.size)), "genres": list(range(n_genres)), "decades": list(range(n_decades))}
    g, d = build_generator(info), build_discriminators(info)["d"]
    opt_g = torch.optim.Adam(g.parameters(), lr=opts.lr_g, betas=(opts.beta1, opts.beta2))
    opt_d = torch.optim.Adam(d.parameters(), lr=opts.lr_d, betas=(opts.beta1, opts.beta2))
    g, d, opt_g, opt_d = accelerator.prepare(g, d, opt_g, opt_d)
    device, b = accelerator.device, opts.batch_size
    w, h = parse_size(opts.size)
    real = (torch.rand(b, 3, h, w, device=device) * 2 - 1).contiguous(memory_format=torch.channels_last)
    y = (torch.rand(b, n_genres, device=device) < 0.2).float()
    dec = torch.randint(0, n_decades, (b,), device=device)

    def step():
        fake = g(torch.randn(b, opts.z_dim, device=device), y, dec)
        scores, _ = d(torch.cat([real, fake.detach()]).contiguous(memory_format=torch.channels_last),
                      torch.cat([y, y]), torch.cat([dec, dec]))
        d_loss = F.relu(1 - scores[:b]).mean() + F.relu(1 + scores[b:]).mean()
        opt_d.zero_grad(set_to_none=True)
        accelerator.backward(d_loss)
        opt_d.step()
        fake_scores, _ = d(fake.contiguous(memory_format=torch.channels_last), y, dec)
        opt_g.zero_grad(set_to_none=True)
        accelerator.backward(-fake_scores.float().mean())
        opt_g.step()

    return timed(step, b, device, warmup=3, iters=iters)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="dataset folder (../shared/posters, or posters-66x98 on a GPU machine)")
    p.add_argument("--decade", action="append", help="classifier posters (default: 1950s on CPU, all on a GPU)")
    p.add_argument("--classifier-epochs", type=int, default=2, help="real-loop epochs; the last one is timed")
    p.add_argument("--gan-steps", type=int, default=None, help="real-loop GAN steps (default 60 on CPU, 600 on a GPU)")
    p.add_argument("--bare-iters", type=int, default=None, help="timed bare steps (default 5 on CPU, 50 on a GPU)")
    args = p.parse_args()
    cuda = torch.cuda.is_available()
    decade = args.decade if args.decade is not None else ([] if cuda else ["1950s"])
    gan_steps = args.gan_steps or (600 if cuda else 60)
    iters = args.bare_iters or (50 if cuda else 5)
    gan_recipe = "gan-64x96-gpu.toml" if cuda else "gan-64x96.toml"
    device = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        real_c, copts = classifier_real(args.data, decade, args.classifier_epochs, tmp)
        info = json.loads((tmp / "classifier" / "classifier.json").read_text())
        bare_c = classifier_bare(copts, len(info["genres"]), len(info["decades"]), iters)
        real_g, gopts = gan_real(args.data, gan_recipe, gan_steps, tmp)
        bare_g = gan_bare(gopts, len(info["genres"]), len(info["decades"]), iters * 4)
    print(f"device: {device}, torch {torch.__version__}")
    print("| loop | size | batch | real loop posters/s | bare model posters/s | real / bare |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, opts, real, bare in (("classifier", copts, real_c, bare_c), ("GAN", gopts, real_g, bare_g)):
        print(f"| {name} | {opts.size} | {opts.batch_size} | {real:,.0f} | {bare:,.0f} | {real / bare:.0%} |")


if __name__ == "__main__":
    main()
