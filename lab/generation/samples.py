"""The samples folder every generator writes and scoring reads: one PNG per poster, grid.png and samples.json.

samples.json holds run, checkpoint, step, seed, n, conditional, size (any extra keys a generator adds,
such as a diffusion model's steps), conditions and images: one record per PNG with its file, genres,
decade, seed, index, run and step.
"""

from __future__ import annotations

import shutil
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
GRID_ROWS_EACH = 4  # rows of a condition's posters in a samples folder's grid, at most
GRID_CONDITIONS = 32  # conditions shown in that grid, at most
PNG_OVERHEAD = 1024  # bytes of a PNG beyond its pixels, at most


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
    """Where `lab sample` writes when no --out is given: named after what was asked for (no conditions:
    drawn like the training posters')."""
    named = "_".join(c.slug() for c in conditions) or "like-training"
    return Path(run_dir) / "samples" / f"{named}-seed{seed}"


class SamplesWriter:
    """Writes a samples folder as the posters come: `<slug>-<index:04d>.png` each, then (at `close`) a
    labelled grid with one row block per condition and samples.json.

    `out` must be new or empty, and the disk must have room for every poster before the first is
    written. `summary` holds the generator's own fields: run (the resolved run folder), checkpoint,
    step, seed, conditional, size, and any extra keys of its own; n (or the plan's counts), conditions
    and the per-image records are added here. The grid shows at most `GRID_ROWS_EACH` rows of each of
    the first `GRID_CONDITIONS` conditions.
    """

    def __init__(self, out: Path, conditions: list[tuple[Condition, int]], summary: dict):
        out = Path(out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise LabError(f"{out} is not empty; choose another --out")
        self.total = sum(count for _, count in conditions)
        width, height = summary["size"]
        need = self.total * (3 * width * height + PNG_OVERHEAD)  # an uncompressed PNG's size, at most
        try:
            out.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(out).free
        except OSError as e:
            raise LabError(f"cannot write the samples folder {out}: {e.strerror or e}; choose another --out") from None
        if need > free:
            if not any(out.iterdir()):
                out.rmdir()
            raise LabError(f"{self.total} posters of {width}x{height} need up to {need / 1e9:.1f} GB, and {out} has "
                           f"{free / 1e9:.1f} GB free; ask for fewer (-n) or choose another --out")
        self.out, self.conditions, self.summary = out, conditions, summary
        self.records: list[dict] = []
        self.columns = min(max(count for _, count in conditions), GRID_COLUMNS)
        self.shown = {c: [] for c, _ in conditions[:GRID_CONDITIONS]}  # the grid's posters

    def add(self, condition: Condition, index: int, image: np.ndarray) -> None:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"a poster for {condition.label()} is {image.dtype} {image.shape}, not uint8 (H, W, 3)")
        name = f"{condition.slug()}-{index:04d}.png"
        Image.fromarray(image).save(self.out / name)
        self.records.append({"file": name, **condition.to_dict(), "seed": self.summary["seed"], "index": index,
                             "run": self.summary["run"], "step": self.summary["step"]})
        shown = self.shown.get(condition)
        if shown is not None and len(shown) < GRID_ROWS_EACH * self.columns:
            shown.append(image)

    def close(self) -> dict:
        """Write grid.png and samples.json; returns what samples.json holds."""
        if len(self.records) != self.total:
            raise ValueError(f"{len(self.records)} posters were written, not the {self.total} planned")
        blank = np.full_like(next(iter(self.shown.values()))[0], 255)
        padded, labels = [], []
        for condition, images in self.shown.items():  # each condition starts a new row of the grid
            padded += images + [blank] * (-len(images) % self.columns)
            labels += [condition.label()] + [""] * (-(-len(images) // self.columns) - 1)
        save_grid(np.stack(padded), self.columns, self.out / GRID_FILE, row_labels=labels)
        counts = {count for _, count in self.conditions}
        summary = {**self.summary, "n": counts.pop() if len(counts) == 1 else None,
                   "conditions": [{**c.to_dict(), "n": count} for c, count in self.conditions],
                   "images": self.records}
        save_json(summary, self.out / SAMPLES_FILE)
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


def steering_levers(steered_by: dict) -> str:
    """samples.json's `steered_by` in words: 'steer_weight 1, select_of 8, steer_scale 0.3'."""
    return ", ".join(f"{k} {steered_by[k]:g}" for k in ("steer_weight", "select_of", "steer_scale")
                     if steered_by.get(k))
