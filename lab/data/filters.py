"""Selecting posters by genre, decade and year: the filters every data-reading command shares."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from lab.data.metadata import PosterTable
from lab.errors import LabError


@dataclass(frozen=True)
class PosterFilter:
    """A poster passes when it has any of `genres`, is from any of `decades` and lies in the years.

    An empty field does not filter.
    """

    genres: tuple[str, ...] = ()
    decades: tuple[int, ...] = ()
    year_min: int | None = None
    year_max: int | None = None

    @classmethod
    def from_options(cls, genres=None, decades=None, year_min=None, year_max=None) -> PosterFilter:
        return cls(tuple(genres or ()), tuple(parse_decade(d) for d in decades or ()), year_min, year_max)

    @classmethod
    def from_dict(cls, saved: dict) -> PosterFilter:
        """The inverse of to_dict, for filters read back from a run's JSON."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})

    def is_empty(self) -> bool:
        return self == PosterFilter()

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def slug(self) -> str:
        """A short name for run folders: 'horror-1980s'."""
        parts = [g.lower() for g in self.genres] + [f"{d}s" for d in self.decades]
        if self.year_min is not None or self.year_max is not None:
            parts.append(f"{self.year_min or ''}-{self.year_max or ''}")
        return re.sub(r"[^a-z0-9-]+", "", "-".join(parts)) or "all"


def parse_decade(value) -> int:
    """1980, '1980' and '1980s' all name the 1980s."""
    m = re.fullmatch(r"\s*(\d{4})s?\s*", str(value))
    if not m or int(m[1]) % 10:
        raise LabError(f"decade {value!r} is not a decade like 1980 or 1980s")
    return int(m[1])


def canonical_genres(names, known: list[str]) -> tuple[str, ...]:
    """Match genre names case-insensitively against the dataset's genres."""
    by_lower = {g.lower(): g for g in known}
    out = []
    for name in names:
        if name.strip().lower() not in by_lower:
            raise LabError(f"unknown genre {name!r}; known genres: {', '.join(known)}")
        out.append(by_lower[name.strip().lower()])
    return tuple(dict.fromkeys(out))


def apply_filter(table: PosterTable, flt: PosterFilter) -> tuple[PosterTable, PosterFilter]:
    """The posters that pass, and the filter with canonical genre names.

    Leaving no poster is an error that says how many posters each filter kept, in order.
    """
    flt = PosterFilter(canonical_genres(flt.genres, table.genres), flt.decades, flt.year_min, flt.year_max)
    posters = table.posters
    mask = posters["imdb_id"].notna()
    steps = [f"the dataset has {int(mask.sum())}"]
    if flt.genres:
        wanted = set(flt.genres)
        mask &= posters["genres"].map(lambda gs: not wanted.isdisjoint(gs))
        steps.append(f"--genre {' / '.join(flt.genres)} kept {int(mask.sum())}")
    if flt.decades:
        mask &= posters["decade"].isin(flt.decades)
        steps.append(f"--decade {' / '.join(str(d) for d in flt.decades)} kept {int(mask.sum())}")
    if flt.year_min is not None:
        mask &= posters["year"] >= flt.year_min
        steps.append(f"--year-min {flt.year_min} kept {int(mask.sum())}")
    if flt.year_max is not None:
        mask &= posters["year"] <= flt.year_max
        steps.append(f"--year-max {flt.year_max} kept {int(mask.sum())}")
    if not mask.any():
        raise LabError("no poster passes the filters: " + ", ".join(steps))
    return table.subset(mask.to_numpy()), flt
