"""How much the asked-for condition changes a generator's posters, against how much the noise does.

In a samples folder where every condition got the same noises (`lab sample` from a conditional run),
posters made from one noise for different conditions should differ: that is what tells the rows of
a grid apart. The effect is their mean absolute pixel difference divided by that between posters of
one condition made from different noises (the columns). Near 0, every row is the same poster
whatever was asked for. It is split by what differs between the two conditions: the genre effect
compares conditions of the same decade, the decade effect conditions of the same genres.

Each is also read on the posters blurred and shrunk to a quarter of their sides (each 4x4 block averaged):
a difference a person sees, layout and colour, survives that; a pixel pattern that only a network reads,
such as a steering classifier's adversarial texture, does not.
"""

from __future__ import annotations

import itertools

import numpy as np

EFFECTS = ("condition_effect", "genre_effect", "decade_effect")
BLURRED = tuple(f"{name}_blurred" for name in EFFECTS)  # the same on posters shrunk to a quarter of their sides
SHRINK = 4


def condition_effects(summary: dict, pixels: np.ndarray) -> dict:
    """{condition_effect, genre_effect, decade_effect} of a samples folder (samples.json, its pixels), and each
    `_blurred` on posters shrunk to a quarter of their sides; each None where the folder cannot tell it: an
    unconditional run's samples, fewer than two noises, or no pair of conditions that differ in that way alone."""
    none = dict.fromkeys(EFFECTS + BLURRED)
    n = summary.get("n")
    if not summary.get("conditional", True) or not summary.get("same_noise", True) or not n or n < 2:
        return none
    slots: dict = {}  # condition -> the position of each noise's poster in `pixels`
    for k, image in enumerate(summary["images"]):
        slots.setdefault((tuple(image["genres"]), image["decade"]), [None] * n)[image["index"]] = k
    conditions = [c for c, ks in slots.items() if None not in ks]
    if len(conditions) < 2:
        return none
    grid = pixels[np.array([slots[c] for c in conditions])].astype(np.float32)  # (conditions, noises, H, W, 3)
    c, n, h, w, _ = grid.shape
    h, w = h // SHRINK * SHRINK, w // SHRINK * SHRINK
    shrunk = grid[:, :, :h, :w].reshape(c, n, h // SHRINK, SHRINK, w // SHRINK, SHRINK, 3).mean((3, 5))
    blurred = _effects(shrunk, conditions) if h and w else dict.fromkeys(EFFECTS)
    return {**_effects(grid, conditions), **{f"{key}_blurred": value for key, value in blurred.items()}}


def _effects(grid: np.ndarray, conditions: list) -> dict:
    n = grid.shape[1]
    shifted = np.roll(np.arange(n), 1)  # each poster against the next noise's, same condition
    across_noises = float(np.mean([np.abs(g - g[shifted]).mean() for g in grid]))
    pairs = {"condition_effect": [], "genre_effect": [], "decade_effect": []}
    for a, b in itertools.combinations(range(len(conditions)), 2):
        difference = float(np.abs(grid[a] - grid[b]).mean())
        pairs["condition_effect"].append(difference)
        (genres_a, decade_a), (genres_b, decade_b) = conditions[a], conditions[b]
        if decade_a == decade_b:
            pairs["genre_effect"].append(difference)
        if genres_a == genres_b:
            pairs["decade_effect"].append(difference)
    return {key: float(np.mean(values)) / across_noises if values and across_noises else None
            for key, values in pairs.items()}
