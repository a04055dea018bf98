"""Building a dataset folder from what users have: Kaggle's MovieGenre.csv, or any CSV plus images.

Rows are mapped onto the dataset's columns, validated like any dataset, optionally downloaded,
every image is decoded once to prove it usable, and the good ones are copied into the new folder.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lab.data.download import download_all
from lab.data.images import decode_many
from lab.data.metadata import COLUMNS, GENRE_SEP, Skipped, validate_records
from lab.errors import LabError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")


@dataclass(frozen=True)
class Columns:
    """Which source columns hold what; `year=None` reads the year as '(YYYY)' in the title."""

    id: str
    title: str
    genres: str
    year: str | None = None
    image: str | None = None  # a path relative to the images folder; default '<id>.jpg'
    url: str | None = None
    genre_sep: str = "|"


KAGGLE = Columns(id="imdbId", title="Title", genres="Genre", url="Poster")


@dataclass
class ImportReport:
    out: Path
    kept: int
    skipped: list[Skipped]
    downloaded: int

    def to_dict(self) -> dict:
        return {"out": str(self.out), "kept": self.kept, "downloaded": self.downloaded,
                "skipped": [vars(s) for s in self.skipped]}


def read_source_csv(path: Path) -> pd.DataFrame:
    if not Path(path).is_file():
        raise LabError(f"no CSV file at {path}")
    for encoding in ("utf-8", "latin-1"):  # Kaggle's MovieGenre.csv is latin-1
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise LabError(f"{path} is not a readable CSV ({str(e).splitlines()[0]})") from None
    raise LabError(f"{path} is neither UTF-8 nor Latin-1 text")


def import_dataset(csv_path: Path, images: Path | None, out: Path, columns: Columns, *, download: bool = False,
                   workers: int = 8, progress: bool = True) -> ImportReport:
    """Write `out`/metadata.csv and `out`/images/ from the source; returns what was kept and skipped."""
    source = read_source_csv(Path(csv_path))
    wanted = [c for c in (columns.id, columns.title, columns.genres, columns.year, columns.image, columns.url) if c]
    missing = [c for c in wanted if c not in source.columns]
    if missing:
        raise LabError(f"{csv_path} lacks the column(s) {', '.join(missing)}; its columns are: "
                       f"{', '.join(source.columns)}")
    if images is None and not download:
        raise LabError("give --images DIR (the posters named by the CSV), --download, or both")
    images = Path(images) if images else out / "images"
    if not images.is_dir() and not download:
        raise LabError(f"images folder {images} does not exist")
    out_images = out / "images"
    out_images.mkdir(parents=True, exist_ok=True)

    records = _records(source, columns, images)
    table = validate_records(records, images, must_exist=False)
    skipped = list(table.skipped)
    posters = table.posters
    line_of = {i: line for line, i in reversed(list(enumerate(records["imdb_id"], start=2)))}

    downloaded, reasons = 0, {}
    missing = ~posters["path"].map(lambda p: Path(p).is_file())
    if download:
        url_of = dict(reversed(list(zip(records["imdb_id"], records["url"]))))
        jobs = [(url_of[i], out_images / f"{i}{_suffix_of(url_of[i])}")
                for i in posters.loc[missing, "imdb_id"] if url_of[i]]
        results = {dest.stem: (dest, err) for dest, err in download_all(jobs, workers=workers,
                                                                          progress=progress).items()}
        downloaded = sum(err is None for _, err in results.values())
        for row in posters.index[missing]:
            dest, err = results.get(posters.at[row, "imdb_id"], (None, "image file missing and no URL"))
            if err is None:
                posters.at[row, "path"] = str(dest)
            else:
                reasons[posters.at[row, "imdb_id"]] = err
    else:
        reasons = {i: f"image file {img} is missing"
                   for i, img in zip(posters.loc[missing, "imdb_id"], posters.loc[missing, "image"])}
    skipped += [Skipped(line_of[i], i, r) for i, r in reasons.items()]
    posters = posters[~posters["imdb_id"].isin(reasons.keys())].reset_index(drop=True)

    bad = {}
    for _, _, errors in decode_many(list(posters["path"]), (32, 48), workers=None, progress=progress):
        bad.update(errors)
    for k, reason in bad.items():
        skipped.append(Skipped(line_of[posters.at[k, "imdb_id"]], posters.at[k, "imdb_id"], reason))
    posters = posters.drop(index=list(bad)).reset_index(drop=True)

    rows = []
    for rec in posters.itertuples(index=False):
        src = Path(rec.path)
        name = f"{rec.imdb_id}{src.suffix.lower() or '.jpg'}"
        if src.resolve() != (out_images / name).resolve():
            shutil.copyfile(src, out_images / name)
        rows.append((rec.imdb_id, rec.title, rec.year, GENRE_SEP.join(rec.genres), f"images/{name}"))
    with open(out / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(rows)
    skipped.sort(key=lambda s: s.row)
    report = ImportReport(out, len(rows), skipped, downloaded)
    (out / "import-report.json").write_text(json.dumps(report.to_dict(), indent=1))
    return report


def _records(source: pd.DataFrame, columns: Columns, images: Path) -> pd.DataFrame:
    """The source rows in the dataset's columns (plus `url`), all as strings."""
    title = source[columns.title].str.strip()
    if columns.year:
        year = source[columns.year]
    else:
        found = title.str.extract(r"\((\d{4})\)\s*$")[0]
        year = found.fillna("")
        title = title.str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True)
    ids = source[columns.id].str.strip()
    genres = source[columns.genres].map(lambda g: GENRE_SEP.join(x.strip() for x in str(g).split(columns.genre_sep)))
    image = source[columns.image] if columns.image else ids.map(lambda i: _image_named(images, i))
    url = source[columns.url].str.strip() if columns.url else pd.Series([""] * len(source))
    return pd.DataFrame({"imdb_id": ids, "title": title, "year": year, "genres": genres,
                         "image": image, "url": url})


def _image_named(images: Path, imdb_id: str) -> str:
    """'<id>.jpg', or the first '<id>.<suffix>' there is: users' folders mix formats."""
    for suffix in IMAGE_SUFFIXES:
        if (images / f"{imdb_id}{suffix}").is_file():
            return f"{imdb_id}{suffix}"
    return f"{imdb_id}.jpg"


def _suffix_of(url: str) -> str:
    suffix = Path(re.sub(r"[?#].*$", "", url)).suffix.lower()
    return suffix if suffix in IMAGE_SUFFIXES else ".jpg"
