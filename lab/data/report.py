"""`lab data check`: validate a dataset and summarise what a run would see."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab.data.cache import load_image_cache
from lab.data.filters import PosterFilter, apply_filter
from lab.data.metadata import PosterTable, read_dataset


@dataclass
class DatasetSummary:
    path: Path
    table: PosterTable  # the usable posters that pass the filter
    filter: PosterFilter
    problems: list[str]  # one line per skipped row or unreadable image, with the reason

    def lines(self) -> list[str]:
        t = self.table
        genre_counts = sorted(t.genre_counts().items(), key=lambda kv: (-kv[1], kv[0]))
        head = (f"{self.path}: {len(t)} posters, {sum(n > 0 for _, n in genre_counts)} genres, "
                f"{sum(n > 0 for n in t.decade_counts().values())} decades, {len(self.problems)} skipped")
        if not self.filter.is_empty():
            head += f" (filtered: {self.filter.slug()})"
        out = [head, "genres:  " + "  ".join(f"{g} {n}" for g, n in genre_counts if n),
               "decades: " + "  ".join(f"{d}s {n}" for d, n in t.decade_counts().items() if n),
               f"ratings: {len(t) - t.unrated()} rated, {t.unrated()} without a usable rating "
               "(no rating column, an empty cell, or not a number from 1 to 10)"]
        if self.problems:
            out.append("skipped:")
            out += [f"  {p}" for p in self.problems]
        return out


def check_dataset(path: str | Path, flt: PosterFilter = PosterFilter(), size=(64, 96), *,
                  progress: bool = True) -> DatasetSummary:
    """Read the metadata, decode every image (warming the cache at `size`) and summarise."""
    table = read_dataset(path)
    if not flt.is_empty():
        apply_filter(table, flt)  # a bad filter fails before minutes of decoding
    problems = [str(s) for s in table.skipped]
    if len(table):
        cache = load_image_cache(table, size, progress=progress)
        image_of = dict(zip(table.posters["imdb_id"], table.posters["image"]))
        problems += [f"{image_of[i]} (id {i}): {reason}" for i, reason in cache.bad.items()]
        table = table.subset(cache.good_mask(table))
    if len(table) and not flt.is_empty():
        table, flt = apply_filter(table, flt)
    return DatasetSummary(Path(path), table, flt, problems)
