"""A deterministic, genre-stratified train/val/test split, recorded in every run folder.

The split is made over the whole dataset, before any filter, and depends only on the posters' ids
and a seed. So a Horror-only GAN run and a classifier run on the same data agree on which
posters are test posters, and the classifier's test posters never leak into later training.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from lab.checkpoint import read_json, save_json
from lab.data.metadata import PosterTable
from lab.errors import LabError

PARTS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def split_posters(table: PosterTable, fractions=DEFAULT_FRACTIONS, seed: int = 0) -> dict[str, list[str]]:
    """Assign every poster to train, val or test; every genre with 3+ posters lands in all three.

    Posters are grouped by their rarest genre, each group is ordered by a hash of (seed, id)
    and cut by the fractions, so the assignment of a poster does not depend on row order.
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise LabError(f"split fractions {fractions} must be three non-negative numbers summing to 1")
    counts = table.genre_counts()
    groups: dict[str, list[str]] = {}
    for imdb_id, genres in zip(table.posters["imdb_id"], table.posters["genres"]):
        rarest = min(genres, key=lambda g: (counts[g], g))
        groups.setdefault(rarest, []).append(imdb_id)
    split = {p: [] for p in PARTS}
    for ids in groups.values():
        ids.sort(key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
        n = len(ids)
        n_val, n_test = (round(n * f) for f in fractions[1:])
        if n >= 3:  # a group of three or more gives each part at least one poster
            n_val, n_test = max(n_val, 1 if fractions[1] else 0), max(n_test, 1 if fractions[2] else 0)
        split["test"] += ids[:n_test]
        split["val"] += ids[n_test:n_test + n_val]
        split["train"] += ids[n_test + n_val:]
    _cover_every_genre(table, split)
    return {p: sorted(ids) for p, ids in split.items()}


def _cover_every_genre(table: PosterTable, split: dict[str, list[str]]) -> None:
    """Move a training poster into val/test for any genre those parts still miss."""
    genres_of = dict(zip(table.posters["imdb_id"], table.posters["genres"]))
    for part in ("val", "test"):
        present = {g for i in split[part] for g in genres_of[i]}
        for genre, n in table.genre_counts().items():
            if genre in present or n < 3:
                continue
            donors = [i for i in split["train"] if genre in genres_of[i]]
            if len(donors) > 1:
                split["train"].remove(donors[0])
                split[part].append(donors[0])
                present.update(genres_of[donors[0]])


def save_split(split: dict[str, list[str]], path: Path, *, seed: int, fingerprint: str) -> None:
    save_json({"seed": seed, "dataset": fingerprint, **{p: split[p] for p in PARTS}}, path)


def load_split(path: Path) -> dict[str, list[str]]:
    """A recorded split; a damaged one is a LabError, since a wrong split would leak test posters."""
    remedy = ("delete it and resume the run that wrote it (`lab train-... --out RUN --resume`): the split is "
              "made again from the dataset and the split seed")
    data = read_json(path, "split file", remedy)
    parts = {p: data.get(p) for p in PARTS}
    if not all(isinstance(ids, list) and all(isinstance(i, str) for i in ids) for ids in parts.values()):
        raise LabError(f"split file {path} is damaged (it needs lists of ids for {', '.join(PARTS)}); {remedy}")
    seen = [i for ids in parts.values() for i in ids]
    if len(seen) != len(set(seen)):
        raise LabError(f"split file {path} is damaged (a poster is in two parts); {remedy}")
    return parts


def part_indices(table: PosterTable, split: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Row indices of `table` in each part; posters the split does not know belong to none."""
    where = {i: p for p in PARTS for i in split[p]}
    parts = table.posters["imdb_id"].map(where)
    return {p: np.flatnonzero((parts == p).to_numpy()) for p in PARTS}
