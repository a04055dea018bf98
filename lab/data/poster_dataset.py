"""The one way every command reads posters: table -> filters -> cached pixels -> split parts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from lab.data.cache import ImageCache, dataset_fingerprint, load_image_cache
from lab.data.filters import PosterFilter, apply_filter
from lab.data.metadata import PosterTable, read_dataset
from lab.data.split import PARTS, load_split, part_indices, save_split, split_posters
from lab.errors import LabError

log = logging.getLogger(__name__)


class PosterDataset(Dataset):
    """Posters as (uint8 image (3, H, W), multi-hot genres (G,), decade index, rating) tuples; the
    rating is NaN where a poster has none (or none that counts).

    A loader reads whole batches at once (`__getitems__`): one sorted read of the memory-mapped cache
    per batch, no per-poster Python and no collation. A batch's images come as (B, 3, H, W) views of
    (B, H, W, 3) pixels, i.e. already in the channels-last layout the models run in.
    """

    def __init__(self, images: np.ndarray, indices: np.ndarray, genres: np.ndarray, decades: np.ndarray,
                 ratings: np.ndarray | None = None):
        self.images, self.indices = images, np.asarray(indices)
        self.genres, self.decades = genres, decades
        self.ratings = np.full(len(genres), np.nan, np.float32) if ratings is None else ratings

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        i = self.indices[k]
        image = torch.from_numpy(np.array(self.images[i])).permute(2, 0, 1)  # a copy: the cache is read-only
        return image, torch.from_numpy(self.genres[i]), int(self.decades[i]), float(self.ratings[i])

    def __getitems__(self, ks: list[int]):
        rows = self.indices[np.asarray(ks, dtype=np.int64)]
        images = torch.from_numpy(np.ascontiguousarray(self.images[rows])).permute(0, 3, 1, 2)
        return (images, torch.from_numpy(self.genres[rows]), torch.from_numpy(self.decades[rows]),
                torch.from_numpy(self.ratings[rows]))


def _as_batch(batch):
    """The batch `__getitems__` already made (a module-level function, so loader processes can pickle it)."""
    return batch


def batch_loader(dataset: PosterDataset, batch_size: int, *, order: np.ndarray | None = None,
                 workers: int = 0) -> DataLoader:
    """Batches of `dataset` in `order` (default: as stored), pinned for a fast copy where there is a GPU."""
    return DataLoader(dataset if order is None else Subset(dataset, order), batch_size=batch_size,
                      collate_fn=_as_batch, num_workers=workers, pin_memory=torch.cuda.is_available())


@dataclass
class Posters:
    """A filtered dataset with its pixels and its train/val/test parts."""

    table: PosterTable  # the filtered posters whose images decoded
    filter: PosterFilter
    cache: ImageCache
    parts: dict[str, np.ndarray]  # part -> rows of `table`
    split: dict[str, list[str]]  # part -> ids, over the whole dataset
    fingerprint: str

    @property
    def genres(self) -> list[str]:
        return self.table.genres

    @property
    def decades(self) -> list[int]:
        return self.table.decades

    @cached_property
    def genre_matrix(self) -> np.ndarray:
        """(N, G) float32 multi-hot genres of every poster in `table`."""
        return multi_hot(self.table.posters["genres"], self.genres)

    @cached_property
    def decade_index(self) -> np.ndarray:
        col = {d: j for j, d in enumerate(self.decades)}
        return self.table.posters["decade"].map(col).to_numpy(np.int64)

    @cached_property
    def ratings(self) -> np.ndarray:
        """(N,) float32 rating of every poster in `table`; NaN where it has none."""
        return self.table.posters["rating"].to_numpy(np.float32)

    def rating_targets(self, min_votes: int) -> np.ndarray:
        """The ratings a model learns from: NaN also where fewer than `min_votes` votes back the rating
        (an unknown vote count does not exclude it)."""
        votes = self.table.posters["votes"].to_numpy()
        return np.where(votes < min_votes, np.nan, self.ratings).astype(np.float32)

    def dataset(self, part: str, ratings: np.ndarray | None = None) -> PosterDataset:
        """One part of the split, with `ratings` (default: every poster's own, `ratings`)."""
        return PosterDataset(self.images, self.parts[part], self.genre_matrix, self.decade_index,
                             self.ratings if ratings is None else ratings)

    @property
    def images(self) -> np.ndarray:
        """Pixels indexed like `table` rows (the cache is indexed by the unfiltered dataset)."""
        return _RowView(self.cache.images, self.table.posters["cache_row"].to_numpy())

    def save_split(self, run_dir: Path, seed: int) -> None:
        save_split(self.split, Path(run_dir) / "split.json", seed=seed, fingerprint=self.fingerprint)


def multi_hot(genre_lists, vocabulary: list[str]) -> np.ndarray:
    """(N, len(vocabulary)) float32: 1 where a poster has the genre; genres outside it are ignored."""
    col = {g: j for j, g in enumerate(vocabulary)}
    out = np.zeros((len(genre_lists), len(vocabulary)), np.float32)
    for i, genres in enumerate(genre_lists):
        out[i, [col[g] for g in genres if g in col]] = 1
    return out


class _RowView:
    """Index a memory-mapped array through a row map without copying it."""

    def __init__(self, array: np.ndarray, rows: np.ndarray):
        self.array, self.rows = array, rows
        self.shape = (len(rows), *array.shape[1:])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k):
        rows = self.rows[k]
        if isinstance(rows, np.ndarray):
            order = np.argsort(rows)  # memmaps read fastest in ascending order
            out = np.empty((len(rows), *self.array.shape[1:]), self.array.dtype)
            out[order] = self.array[rows[order]]
            return out
        return self.array[rows]


def open_posters(data: str | Path, flt: PosterFilter = PosterFilter(), size=(64, 96), *, split_seed: int = 0,
                 split_file: Path | None = None, progress: bool = True) -> Posters:
    """Read, filter, decode (through the cache) and split a dataset.

    `split_file` reuses a recorded split (a run's split.json) instead of computing one, so that
    everything reading a run sees that run's test posters.
    """
    full = read_dataset(data)
    if not len(full):
        raise LabError(f"{data} has no usable poster ({len(full.skipped)} rows skipped); "
                       "`lab data check` says why")
    if full.skipped:
        log.warning("%d row(s) of %s skipped; `lab data check` lists them", len(full.skipped), data)
    full.posters["cache_row"] = np.arange(len(full))
    filtered, flt = apply_filter(full, flt)  # before decoding: a bad filter fails at once
    fingerprint = dataset_fingerprint(full)
    cache = load_image_cache(full, size, progress=progress, fingerprint=fingerprint)
    if cache.bad:
        log.warning("%d image(s) could not be decoded and are left out; `lab data check` lists them",
                    len(cache.bad))
    filtered = filtered.subset(cache.good_mask(filtered))
    if not len(filtered):
        raise LabError(f"no poster that passes the filters has a readable image in {data}")
    split = load_split(split_file) if split_file else split_posters(full, seed=split_seed)
    parts = part_indices(filtered, split)
    return Posters(filtered, flt, cache, parts, split, fingerprint)


def open_run_posters(run, size, flt: PosterFilter = PosterFilter(), *, progress: bool = True) -> Posters:
    """The dataset a run (`lab.runs.Run`) trained on, split as that run recorded it, so that its test
    posters are the ones it never saw."""
    return open_posters(run.options["data"], flt, size, split_file=run.path / "split.json", progress=progress)


__all__ = ["PARTS", "PosterDataset", "Posters", "batch_loader", "open_posters", "open_run_posters"]
