"""The on-disk dataset format: a folder with `metadata.csv` and the images it names.

`metadata.csv` has the columns imdb_id,title,year,genres,image; genres are `|`-separated and
`image` is a path relative to the folder. Bad rows are skipped with a reason, never fatal.
Optional columns: `rating` (the film's IMDb average, 1-10) and `votes` (how many votes it rests
on). A missing or bad rating only means "no rating": the poster is kept for everything else.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lab.errors import LabError

COLUMNS = ("imdb_id", "title", "year", "genres", "image")
OPTIONAL_COLUMNS = ("rating", "votes")
RATING_RANGE = (1.0, 10.0)
GENRE_SEP = "|"
FORMAT_HELP = (
    "a dataset is a folder with metadata.csv (columns imdb_id,title,year,genres,image; "
    "genres separated by '|'; image a path inside the folder) and the images it names; "
    "`lab data import` builds one from a Kaggle MovieGenre.csv or any CSV plus images"
)
YEAR_RANGE = (1870, 2100)
# Ids become file names on import, so they must not carry path separators or start with a dot.
ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass
class Skipped:
    """A row left out of the dataset, with the reason a user can act on."""

    row: int  # line number in the CSV, header being line 1
    imdb_id: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.row} (id {self.imdb_id or '?'}): {self.reason}"


@dataclass
class PosterTable:
    """The good rows of a dataset, the rows skipped and the label vocabularies."""

    root: Path
    # columns: imdb_id, title, year, decade, genres (tuple), image, path, rating and votes (float, NaN: none)
    posters: pd.DataFrame
    genres: list[str]  # every genre of the whole dataset, sorted
    decades: list[int]
    skipped: list[Skipped] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.posters)

    def subset(self, rows) -> PosterTable:
        """Same vocabularies, fewer posters: conditions stay comparable across filtered runs."""
        return PosterTable(self.root, self.posters.iloc[rows].reset_index(drop=True), self.genres,
                           self.decades, self.skipped)

    def genre_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.genres, 0)
        for genres in self.posters["genres"]:
            for g in genres:
                counts[g] += 1
        return counts

    def unrated(self) -> int:
        """Posters with no usable rating (no rating column, an empty or bad cell)."""
        return int(self.posters["rating"].isna().sum())

    def decade_counts(self) -> dict[int, int]:
        counts = self.posters["decade"].value_counts()
        return {d: int(counts.get(d, 0)) for d in self.decades}


def read_dataset(root: str | Path) -> PosterTable:
    """Read and validate a dataset folder; images are checked later, when they are decoded."""
    root = Path(root)
    csv = root / "metadata.csv"
    if not root.is_dir():
        raise LabError(f"no dataset at {root}: {FORMAT_HELP}")
    if not csv.is_file():
        raise LabError(f"{root} has no metadata.csv: {FORMAT_HELP}")
    try:
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise LabError(f"{csv} is not a readable CSV ({str(e).splitlines()[0]}): {FORMAT_HELP}")
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise LabError(f"{csv} lacks the column(s) {', '.join(missing)}: {FORMAT_HELP}")
    return validate_records(frame[[c for c in (*COLUMNS, *OPTIONAL_COLUMNS) if c in frame.columns]], root)


def validate_records(frame: pd.DataFrame, root: Path, *, must_exist: bool = True) -> PosterTable:
    """Keep the rows that make a usable poster; skip the others with their reason.

    `frame` has the columns of COLUMNS, and any of OPTIONAL_COLUMNS, as strings. With `must_exist`
    an image file that is not there skips the row (an importer that will download it passes False).
    """
    ratings = frame["rating"].map(parse_rating) if "rating" in frame.columns else None
    votes = frame["votes"].map(parse_votes) if "votes" in frame.columns else None
    root_resolved = root.resolve()
    rows, skipped, first_line = [], [], {}
    for i, rec in enumerate(frame.itertuples(index=False), start=2):
        imdb_id = str(rec.imdb_id).strip()
        reason = None
        year = _parse_year(rec.year)
        genres = tuple(dict.fromkeys(g.strip() for g in str(rec.genres).split(GENRE_SEP) if g.strip()))
        if not imdb_id:
            reason = "no id"
        elif not ID_PATTERN.fullmatch(imdb_id):
            reason = f"id {imdb_id!r} is not a plain name (letters, digits, _ . -)"
        elif imdb_id in first_line:
            reason = f"duplicate id (kept the row on line {first_line[imdb_id]})"
        elif year is None:
            reason = f"no valid year ({str(rec.year).strip()!r})" if str(rec.year).strip() else "no year"
        elif not genres:
            reason = "no genre"
        else:
            path, reason = _image_path(str(rec.image).strip(), root, root_resolved, must_exist)
        if reason:
            skipped.append(Skipped(i, imdb_id, reason))
            continue
        first_line[imdb_id] = i
        k = i - 2
        rows.append((imdb_id, str(rec.title).strip(), year, year // 10 * 10, genres, str(rec.image).strip(),
                     str(path), np.nan if ratings is None else ratings.iat[k], np.nan if votes is None else votes.iat[k]))
    posters = pd.DataFrame(rows, columns=["imdb_id", "title", "year", "decade", "genres", "image", "path",
                                          "rating", "votes"]).astype({"rating": float, "votes": float})
    genres = sorted({g for gs in posters["genres"] for g in gs})
    decades = sorted(int(d) for d in posters["decade"].unique())
    return PosterTable(root, posters, genres, decades, skipped)


def _parse_year(value) -> int | None:
    text = str(value).strip()
    try:
        year = int(float(text)) if re.fullmatch(r"\d{4}(\.0*)?", text) else None
    except ValueError:
        return None
    if year is None or not YEAR_RANGE[0] <= year <= YEAR_RANGE[1]:
        return None
    return year


def parse_rating(value) -> float:
    """A rating cell as a number in RATING_RANGE; NaN for empty, 'n/a', '7,5', out of range or NaN."""
    number = _number(value)
    return number if RATING_RANGE[0] <= number <= RATING_RANGE[1] else np.nan


def parse_votes(value) -> float:
    """A vote count cell as a whole number >= 0; NaN where it is not one."""
    number = _number(value)
    return number if number >= 0 and float(number).is_integer() else np.nan


def _number(value) -> float:
    """A plain decimal number ('7.5', '1200'); NaN for anything else (NaN never compares true)."""
    text = str(value).strip()
    return float(text) if re.fullmatch(r"[+-]?\d+(\.\d*)?|[+-]?\.\d+", text) else np.nan


def _image_path(image: str, root: Path, root_resolved: Path, must_exist: bool):
    """The image's absolute path, or None and the reason it is refused."""
    if not image:
        return None, "no image path"
    if os.path.isabs(image) or re.match(r"^[A-Za-z]:[\\/]", image):
        return None, f"image path {image!r} is absolute; it must lie inside the dataset folder"
    path = root / image
    if not path.resolve().is_relative_to(root_resolved):
        return None, f"image path {image!r} escapes the dataset folder"
    if must_exist and not path.is_file():
        return None, f"image file {image} is missing"
    return path, None
