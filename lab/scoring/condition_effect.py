"""How much the asked-for condition changes a generator's posters, against how much the noise does.

In a samples folder where every condition got the same noises (`lab sample` from a conditional run),
posters made from one noise for different conditions should differ: that is what tells the rows of
a grid apart. The effect is their mean absolute pixel difference divided by that between posters of
one condition made from different noises (the columns). Near 0, every row is the same poster
whatever was asked for. It is split by what differs between the two conditions: the genre effect
compares conditions of the same decade, the decade effect conditions of the same genres.
"""

from __future__ import annotations

import itertools

import numpy as np

EFFECTS = ("condition_effect", "genre_effect", "decade_effect")


def condition_effects(summary: dict, pixels: np.ndarray) -> dict:
    """{condition_effect, genre_effect, decade_effect} of a samples folder (samples.json, its pixels); each
    None where the folder cannot tell it: an unconditional run's samples, fewer than two noises, or no
    pair of conditions that differ in that way alone."""
    none = dict.fromkeys(EFFECTS)
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
