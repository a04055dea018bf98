"""The samples folder every generator writes and scoring reads: one PNG per poster, grid.png and samples.json.

samples.json holds run, checkpoint, step, seed, n, conditional, size (any extra keys a generator adds,
such as a diffusion model's steps), conditions and images: one record per PNG with its file, genres,
decade, seed, index, run and step.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from lab.checkpoint import read_json, save_json
from lab.errors import LabError
from lab.generation.condition import Condition

SAMPLES_FILE = "samples.json"
GRID_FILE = "grid.png"
GRID_COLUMNS = 8


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images in [-1, 1], (B, 3, H, W) -> uint8 (B, H, W, 3)."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round()
    return x.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def save_grid(images: np.ndarray, columns: int, path: Path, gap: int = 2, row_labels: list[str] | None = None) -> None:
    """uint8 (B, H, W, 3) -> one PNG, `columns` posters per row, separated by a white gap, each row
    optionally named in a margin on its left."""
    b, h, w, _ = images.shape
    rows = -(-b // columns)
    margin = 0
    if row_labels:
        font = ImageFont.load_default()
        margin = max(int(font.getlength(label)) for label in row_labels) + 2 * gap + 4
    canvas = np.full((rows * (h + gap) - gap, margin + columns * (w + gap) - gap, 3), 255, np.uint8)
    for k, image in enumerate(images):
        r, c = divmod(k, columns)
        canvas[r * (h + gap):r * (h + gap) + h, margin + c * (w + gap):margin + c * (w + gap) + w] = image
    picture = Image.fromarray(canvas)
    if row_labels:
        draw = ImageDraw.Draw(picture)
        for r, label in enumerate(row_labels):
            draw.text((gap, r * (h + gap) + h // 2 - 5), label, fill=(0, 0, 0), font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)


def default_samples_dir(run_dir: Path, conditions: list[Condition], seed: int) -> Path:
    """Where `lab sample` writes when no --out is given: named after what was asked for."""
    return Path(run_dir) / "samples" / f"{'_'.join(c.slug() for c in conditions)}-seed{seed}"


def write_samples(out: Path, conditions: list[Condition], n: int,
                  generate: Callable[[int, Condition], np.ndarray], summary: dict) -> dict:
    """Write n posters per condition into `out` (which must be new or empty) as `<slug>-<index:04d>.png`,
    a labelled grid with one row block per condition, and samples.json; returns what samples.json holds.

    `generate(k, condition)` gives the n posters of `conditions[k]` as uint8 (n, H, W, 3), see `to_uint8`;
    it is called once per condition, in order, after `out` has been checked, so a generator seeds its
    own noise and may reuse it across conditions. `summary` holds the generator's own fields: run (the
    resolved run folder), checkpoint, step, seed, conditional, size, and any extra keys of its own;
    n, conditions and the per-image records are added here.
    """
    out = Path(out)
    if n < 1:
        raise LabError("-n must be at least 1")
    if out.exists() and any(out.iterdir()):
        raise LabError(f"{out} is not empty; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    records, pixels = [], []
    for k_condition, condition in enumerate(conditions):
        images = generate(k_condition, condition)
        if images.dtype != np.uint8 or images.shape[0] != n or images.ndim != 4 or images.shape[3] != 3:
            raise ValueError(f"generate gave {images.dtype} {images.shape} for {condition.label()}, "
                             f"not uint8 ({n}, H, W, 3)")
        for index, image in enumerate(images):
            name = f"{condition.slug()}-{index:04d}.png"
            Image.fromarray(image).save(out / name)
            records.append({"file": name, **condition.to_dict(), "seed": summary["seed"], "index": index,
                            "run": summary["run"], "step": summary["step"]})
            pixels.append(image)
    columns = min(n, GRID_COLUMNS)
    rows_each = -(-n // columns)
    blank = np.full_like(pixels[0], 255)
    padded = [image for c in range(len(conditions))  # each condition starts a new row of the grid
              for image in pixels[c * n:(c + 1) * n] + [blank] * (-n % columns)]
    labels = [c.label() if r == 0 else "" for c in conditions for r in range(rows_each)]
    save_grid(np.stack(padded), columns, out / GRID_FILE, row_labels=labels)
    summary = {**summary, "n": n, "conditions": [c.to_dict() for c in conditions], "images": records}
    save_json(summary, out / SAMPLES_FILE)
    return summary


def read_conditions(summary: dict) -> list[Condition]:
    """The conditions a samples.json was asked for, in its order."""
    return [Condition.from_dict(c) for c in summary["conditions"]]


def read_samples(samples_dir: Path) -> tuple[dict, np.ndarray]:
    """samples.json and every sample's pixels (N, H, W, 3) in its order; a bad folder is a one-line error."""
    if not samples_dir.is_dir():
        raise LabError(f"{samples_dir} is not a folder of samples")
    if not any(samples_dir.iterdir()):
        raise LabError(f"{samples_dir} is empty; make samples with `lab sample RUN --out DIR`")
    path = samples_dir / SAMPLES_FILE
    if not path.is_file():
        raise LabError(f"{samples_dir} has no {SAMPLES_FILE}; give a folder that `lab sample` writes")
    remake = "make the samples again with `lab sample RUN --out DIR`"
    summary = read_json(path, "samples file", remake)
    try:
        records, (width, height) = summary["images"], summary["size"]
        read_conditions(summary)
        complete = all({"file", "genres", "decade"} <= r.keys() for r in records)
    except (ValueError, KeyError, TypeError, AttributeError):  # parts missing or of the wrong kind
        complete = False
    if not complete:
        raise LabError(f"samples file {path} is damaged (it lacks images, sizes or conditions); {remake}")
    if not records:
        raise LabError(f"{path} lists no image")
    pixels = []
    for r in records:
        try:
            with Image.open(samples_dir / r["file"]) as im:
                if im.size != (width, height):
                    raise LabError(f"{samples_dir / r['file']} is {im.size[0]}x{im.size[1]}, but {SAMPLES_FILE} "
                                   f"says the samples are {width}x{height}")
                pixels.append(np.asarray(im.convert("RGB")))
        except (OSError, UnidentifiedImageError) as e:  # OSError: missing, or a truncated PNG
            raise LabError(f"cannot read sample {samples_dir / r['file']}: {e}; {remake}") from None
    return summary, np.stack(pixels)
