"""Small synthetic posters whose look depends on genre and decade: a test aid, never a fallback.

Each genre has a hue and a shape; each decade a tint (older is sepia), a title-band position and
a frame. A model can learn both from a few hundred posters in seconds. The film's rating depends
on its genre and decade, and on a gold bar along the poster's foot whose length only the poster
shows: the poster says something about the rating beyond its labels, as the real question asks.
Every RATINGLESS-th poster has an empty rating cell. The output is a dataset folder in the real
format, so tests exercise the same code path as real data.
"""

from __future__ import annotations

import colorsys
import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

DEFAULT_GENRES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi")
DEFAULT_DECADES = (1950, 1970, 1990, 2010)
SHAPES = ("circle", "triangle", "square", "diamond", "ring", "cross")
SEPIA = np.array([112, 66, 20], np.float32)
GOLD = (255, 200, 40)
RATINGLESS = 41


def make_synthetic_posters(out: str | Path, n: int = 200, *, seed: int = 0, size=(64, 96),
                           genres=DEFAULT_GENRES, decades=DEFAULT_DECADES, second_genre_p: float = 0.3,
                           ratings: bool = True) -> Path:
    """Write `n` posters and their metadata.csv into `out`; the same seed gives the same files.

    `ratings=False`: no rating columns and no gold bar, posters that show only their genres and decade.
    """
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rating_rng = np.random.default_rng([seed, 1])  # apart, so the drawings stay what they were without ratings
    rows = []
    for k in range(n):
        # Cycling the primary genre and decade keeps every class present even in tiny sets.
        first = genres[k % len(genres)]
        chosen = [first]
        if rng.random() < second_genre_p:
            chosen.append(genres[int(rng.integers(len(genres)))])
        chosen = list(dict.fromkeys(chosen))
        decade = decades[(k // len(genres)) % len(decades)]
        image = draw_poster([genres.index(g) for g in chosen], decades.index(decade), len(genres),
                            len(decades), size, rng)
        quality = rating_rng.random()
        if ratings:
            ImageDraw.Draw(image).rectangle([0, size[1] - max(2, size[1] // 16), round(quality * (size[0] - 1)),
                                             size[1] - 1], fill=GOLD)
        label_effect = genres.index(first) / max(len(genres) - 1, 1) - 0.5 - 0.5 * decades.index(decade) / len(decades)
        rating = np.clip(5.0 + 1.5 * label_effect + 3.0 * quality + rating_rng.normal(0, 0.3), 1, 10)
        votes = int(rating_rng.integers(20, 5000))
        imdb_id = f"syn{k:05d}"
        image.save(out / "images" / f"{imdb_id}.jpg", quality=92)
        rows.append((imdb_id, f"Synthetic Poster {k}", decade + int(rng.integers(10)), "|".join(chosen),
                     f"images/{imdb_id}.jpg", "" if k % RATINGLESS == RATINGLESS - 1 else f"{rating:.1f}", votes))
    columns = ["imdb_id", "title", "year", "genres", "image", "rating", "votes"][:7 if ratings else 5]
    with open(out / "metadata.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        w.writerows(row[:len(columns)] for row in rows)
    return out


def draw_poster(genre_ids: list[int], decade_id: int, n_genres: int, n_decades: int, size,
                rng: np.random.Generator) -> Image.Image:
    w, h = size
    hue = genre_ids[0] / n_genres
    base = np.array(colorsys.hsv_to_rgb(hue, 0.75, 0.85)) * 255
    age = 1 - decade_id / max(n_decades - 1, 1)  # 1 for the oldest decade, 0 for the newest
    background = (1 - 0.7 * age) * base + 0.7 * age * SEPIA
    im = Image.new("RGB", size, tuple(int(c) for c in background))
    d = ImageDraw.Draw(im)
    band_y = int((0.08 + 0.75 * (1 - age)) * h)  # title band moves down the poster over the decades
    d.rectangle([0, band_y, w, band_y + h // 8], fill=(20, 20, 20) if age < 0.5 else (235, 225, 200))
    if age > 0.5:
        d.rectangle([1, 1, w - 2, h - 2], outline=(40, 30, 20), width=max(1, w // 24))
    for j, g in enumerate(genre_ids):
        colour = tuple(int(c * 255) for c in colorsys.hsv_to_rgb((g / n_genres + 0.5) % 1, 0.9, 1.0))
        cx = w * (0.35 + 0.3 * j) + rng.normal(0, w * 0.04)
        cy = h * 0.45 + rng.normal(0, h * 0.04)
        r = w * rng.uniform(0.15, 0.22)
        _shape(d, SHAPES[g % len(SHAPES)], cx, cy, r, colour)
    pixels = np.asarray(im, np.float32) + rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _shape(d: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, colour) -> None:
    box = [cx - r, cy - r, cx + r, cy + r]
    if kind == "circle":
        d.ellipse(box, fill=colour)
    elif kind == "ring":
        d.ellipse(box, outline=colour, width=max(2, int(r / 3)))
    elif kind == "square":
        d.rectangle(box, fill=colour)
    elif kind == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    elif kind == "diamond":
        d.polygon([(cx, cy - r), (cx - r, cy), (cx, cy + r), (cx + r, cy)], fill=colour)
    else:
        t = max(2, int(r / 2.5))
        d.rectangle([cx - r, cy - t / 2, cx + r, cy + t / 2], fill=colour)
        d.rectangle([cx - t / 2, cy - r, cx + t / 2, cy + r], fill=colour)
