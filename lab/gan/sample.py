"""`sample_run`: posters from a GAN run's EMA generator, for chosen genres and decades."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lab.checkpoint import load_weights, save_json
from lab.errors import LabError
from lab.gan.conditions import Condition, condition_tensors, parse_conditions
from lab.gan.grid import save_grid, to_uint8
from lab.gan.train import CHECKPOINTS, build_models, load_gan_info
from lab.training import inference_device

SAMPLES_FILE = "samples.json"
GRID_COLUMNS = 8


def sample_run(run_dir: Path, genres: list[str] | None, decades: list[str] | None, n: int, seed: int,
               out: Path | None = None, batch_size: int = 64) -> tuple[Path, dict]:
    """Write n PNGs per condition, grid.png and samples.json; the same seed gives the same images."""
    run_dir = Path(run_dir)
    info = load_gan_info(run_dir)
    if n < 1:
        raise LabError("-n must be at least 1")
    flt = info["filter"]
    conditions = parse_conditions(genres or flt["genres"], decades or [str(d) for d in flt["decades"]],
                                  info["genres_seen"], info["decades_seen"])
    generator = build_models(info)[0].eval()
    weights = run_dir / CHECKPOINTS / "g_ema.safetensors"
    if not weights.is_file():
        raise LabError(f"{run_dir} has no checkpoint yet ({weights}); train it first")
    step = int(load_weights(generator, weights).get("step", -1))
    device = inference_device()
    generator.to(device)
    out = Path(out) if out else run_dir / "samples" / f"{'_'.join(c.slug() for c in conditions)}-seed{seed}"
    if out.exists() and any(out.iterdir()):
        raise LabError(f"{out} is not empty; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    # The same noise for every condition: rows of the grid differ only by what was asked for. An
    # unconditional generator ignores the condition, so there each condition draws noise of its own,
    # or its conditions would repeat the same posters (and score as a set of duplicates).
    conditional = info["model"]["conditional"]
    z = torch.randn(n * (1 if conditional else len(conditions)), info["model"]["z_dim"],
                    generator=torch.Generator().manual_seed(seed))
    records, pixels = [], []
    for k_condition, condition in enumerate(conditions):
        y, d = condition_tensors([condition], info["genres"], info["decades"], device)
        z_condition = z if conditional else z[k_condition * n:(k_condition + 1) * n]
        for start in range(0, n, batch_size):
            zb = z_condition[start:start + batch_size].to(device)
            with torch.no_grad():
                images = to_uint8(generator(zb, y.expand(len(zb), -1), d.expand(len(zb))))
            for k, image in enumerate(images):
                name = f"{condition.slug()}-{start + k:04d}.png"
                Image.fromarray(image).save(out / name)
                records.append({"file": name, **condition.to_dict(), "seed": seed, "index": start + k,
                                "run": str(run_dir.resolve()), "step": step})
                pixels.append(image)
    columns = min(n, GRID_COLUMNS)
    rows_each = -(-n // columns)
    blank = np.full_like(pixels[0], 255)
    padded = [image for c in range(len(conditions))  # each condition starts a new row of the grid
              for image in pixels[c * n:(c + 1) * n] + [blank] * (-n % columns)]
    labels = [c.label() if r == 0 else "" for c in conditions for r in range(rows_each)]
    save_grid(np.stack(padded), columns, out / "grid.png", row_labels=labels)
    summary = {"run": str(run_dir.resolve()), "checkpoint": f"{CHECKPOINTS}/g_ema.safetensors", "step": step,
               "seed": seed, "n": n, "conditional": info["model"]["conditional"], "size": info["size"],
               "conditions": [c.to_dict() for c in conditions], "images": records}
    save_json(summary, out / SAMPLES_FILE)
    return out, summary


def read_conditions(summary: dict) -> list[Condition]:
    return [Condition(tuple(c["genres"]), c["decade"]) for c in summary["conditions"]]
