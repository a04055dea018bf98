"""Building a dataset folder from what users have: Kaggle's MovieGenre.csv, or any CSV plus images.

Rows are mapped onto the dataset's columns, validated like any dataset, optionally downloaded,
every image is decoded once to prove it usable, and the good ones are copied into the new folder.
Hostile cells are refused or neutralised row by row, each named in the report, so that no good
row is lost: cells far too long, formula-like titles (a spreadsheet would run them), genres that
are formulas, control characters such as NUL, bytes that are not UTF-8 in a UTF-8 file, rows with
more cells than the header.

Ratings: `rating` (the film's average, 1-10) and `votes` come from the columns named for them
(Kaggle's `IMDB Score`; Kaggle has no vote counts). A rating or vote count that is not a number in
range (empty, 'n/a', '0', '11', '7,5', 'NaN', a negative or fractional vote count) only means "no
rating": the row is kept, its cell is written empty, and the report counts such posters. Only the
parsed number is ever written, so a formula or control characters in these cells cannot reach the
output. A rating or votes cell over the length limit is read as empty and noted, rather than
refusing its row as an overlong id or title does: a bad rating never loses a poster.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lab.data.download import download_all
from lab.data.images import decode_many
from lab.data.metadata import COLUMNS, GENRE_SEP, OPTIONAL_COLUMNS, Skipped, validate_records
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
    rating: str | None = None  # the film's average rating, 1-10
    votes: str | None = None  # how many votes that rating rests on


KAGGLE = Columns(id="imdbId", title="Title", genres="Genre", url="Poster", rating="IMDB Score")


# Longest cell read from a used column: ids, titles, genres, paths and URLs are far shorter, and a
# multi-megabyte cell is a broken or hostile file.
MAX_CELL = 4096
FORMULA_START = ("=", "+", "-", "@")  # what spreadsheets read as a formula (OWASP's CSV injection list)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, after decoding with surrogateescape
UTF8_BEYOND_ASCII = re.compile("[^\x00-\x7f\udc80-\udcff]")


@dataclass
class Neutralised:
    """A cell that was changed to be safe, and how; its row was kept."""

    row: int
    imdb_id: str
    what: str

    def __str__(self) -> str:
        return f"line {self.row} (id {self.imdb_id or '?'}): {self.what}"


@dataclass
class ImportReport:
    out: Path
    kept: int
    skipped: list[Skipped]
    downloaded: int
    unrated: int  # kept posters with no usable rating
    neutralised: list[Neutralised] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"out": str(self.out), "kept": self.kept, "downloaded": self.downloaded, "unrated": self.unrated,
                "skipped": [vars(s) for s in self.skipped], "neutralised": [vars(n) for n in self.neutralised]}


@dataclass
class SourceCsv:
    """The source's cells as text, with what reading it had to refuse or repair, by line."""

    frame: pd.DataFrame
    refused: dict[int, str]  # line -> why the whole row is left out
    notes: list[tuple[int, str]]  # (line, what was repaired)


def read_source_csv(path: Path) -> SourceCsv:
    """Every row of the CSV as strings (line = row index + 2). UTF-8, or Latin-1 as Kaggle's file is; in a
    UTF-8 file, a cell with bytes that are not UTF-8 is read as Latin-1 and noted."""
    if not Path(path).is_file():
        raise LabError(f"no CSV file at {path}")
    data = Path(path).read_bytes()
    text = data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    # A file with no UTF-8 beyond ASCII but other bytes is a Latin-1 file: nothing to note per row.
    mixed = UTF8_BEYOND_ASCII.search(text) is not None
    limit = csv.field_size_limit()
    csv.field_size_limit(1 << 30)  # long cells are refused row by row below, not by failing the file
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as e:
        raise LabError(f"{path} is not a readable CSV ({e})") from None
    finally:
        csv.field_size_limit(limit)
    if not rows or not any(rows[0]):
        raise LabError(f"{path} is empty: a CSV needs a header line and rows")
    header = [_from_bytes(h) for h in rows[0]]
    refused, notes, cells = {}, [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) > len(header):
            refused[line] = f"{len(row)} cells where the header has {len(header)}"
        row = (row + [""] * len(header))[:len(header)]
        fixed = [_from_bytes(c) for c in row]
        broken = [h for h, a, b in zip(header, row, fixed) if a != b]
        if broken and mixed:
            notes.append((line, f"bytes that are not UTF-8 in {', '.join(broken)}, read as Latin-1"))
        cells.append(fixed)
    return SourceCsv(pd.DataFrame(cells, columns=header, dtype=str), refused, notes)


def _from_bytes(cell: str) -> str:
    """A cell decoded with surrogateescape: bytes that were not UTF-8 are read as Latin-1."""
    if not NOT_UTF8.search(cell):
        return cell
    return cell.encode("utf-8", "surrogateescape").decode("latin-1")


def import_dataset(csv_path: Path, images: Path | None, out: Path, columns: Columns, *, download: bool = False,
                   workers: int = 8, progress: bool = True, allow_private: bool = False) -> ImportReport:
    """Write `out`/metadata.csv and `out`/images/ from the source; returns what was kept, skipped and
    neutralised. `allow_private` lets --download fetch from loopback and private-network addresses."""
    read = read_source_csv(Path(csv_path))
    source = read.frame
    wanted = [c for c in (columns.id, columns.title, columns.genres, columns.year, columns.image, columns.url,
                          columns.rating, columns.votes) if c]
    missing = [c for c in wanted if c not in source.columns]
    if missing:
        raise LabError(f"{csv_path} lacks the column(s) {', '.join(missing)}; its columns are: "
                       f"{', '.join(map(repr, source.columns))}")
    if images is None and not download:
        raise LabError("give --images DIR (the posters named by the CSV), --download, or both")
    images = Path(images) if images else out / "images"
    if not images.is_dir() and not download:
        raise LabError(f"images folder {images} does not exist")
    out_images = out / "images"
    out_images.mkdir(parents=True, exist_ok=True)

    source, refused, neutralised = _guard_cells(source, columns, wanted, read)
    records = _records(source, columns, images)
    table = validate_records(records, images, must_exist=False)
    # Refused rows reach validation blank, so that nothing of them is used; their reason is ours.
    skipped = [Skipped(s.row, refused[s.row][0], refused[s.row][1]) if s.row in refused else s
               for s in table.skipped]
    posters = table.posters
    line_of = {i: line for line, i in reversed(list(enumerate(records["imdb_id"], start=2)))}

    downloaded, reasons = 0, {}
    missing = ~posters["path"].map(lambda p: Path(p).is_file())
    if download:
        url_of = dict(reversed(list(zip(records["imdb_id"], records["url"]))))
        jobs = [(url_of[i], out_images / f"{i}{_suffix_of(url_of[i])}")
                for i in posters.loc[missing, "imdb_id"] if url_of[i]]
        fetched = download_all(jobs, workers=workers, progress=progress, allow_private=allow_private)
        results = {dest.stem: (dest, err) for dest, err in fetched.items()}
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
        rows.append((rec.imdb_id, rec.title, rec.year, GENRE_SEP.join(rec.genres), f"images/{name}",
                     _number_cell(rec.rating), _number_cell(rec.votes)))
    with open(out / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow((*COLUMNS, *OPTIONAL_COLUMNS))
        w.writerows(rows)
    skipped.sort(key=lambda s: s.row)
    report = ImportReport(out, len(rows), skipped, downloaded, int(posters["rating"].isna().sum()), neutralised)
    (out / "import-report.json").write_text(json.dumps(report.to_dict(), indent=1))
    return report


def _guard_cells(source: pd.DataFrame, columns: Columns, used: list[str], read: SourceCsv):
    """Refuse or neutralise hostile cells, row by row, before anything uses them (a NUL in a path or a
    10 MB id would break the file system calls that follow).

    Returns the source with refused rows blanked, {line: (shown id, reason)} and what was neutralised.
    """
    source = source.copy()
    refused = {line: (_shown(source.at[line - 2, columns.id]), why) for line, why in read.refused.items()}
    neutralised = [Neutralised(line, _shown(source.at[line - 2, columns.id]), what) for line, what in read.notes]
    # A bad rating or vote count is "no rating", never a lost row (unless the column is also used as text).
    text = (columns.id, columns.title, columns.genres, columns.year, columns.image, columns.url)
    numbers = [c for c in (columns.rating, columns.votes) if c and c not in text]
    for k, row in enumerate(source[used].itertuples(index=False)):
        line, cells = k + 2, dict(zip(used, row))
        imdb_id = _shown(cells[columns.id])
        why = next((f"{name} cell is {len(text):,} characters, over the {MAX_CELL:,} limit"
                    for name, text in cells.items() if len(text) > MAX_CELL and name not in numbers), None)
        for name in filter(None, (columns.id, columns.image)):
            if why is None and CONTROL.search(cells[name]):
                why = f"{name} has control characters ({_controls(cells[name])})"
        genres = [g.strip() for g in CONTROL.sub("", cells[columns.genres]).split(columns.genre_sep)]
        formula = next((g for g in genres if g.startswith(FORMULA_START)), None)
        if why is None and formula:
            why = f"genre {_shown(formula)} looks like a spreadsheet formula, not a genre"
        if why or line in refused:
            refused.setdefault(line, (imdb_id, why))
            source.loc[k, used] = ""
            continue
        for name in numbers:
            if len(cells[name]) > MAX_CELL:
                neutralised.append(Neutralised(line, imdb_id, f"{name} cell is {len(cells[name]):,} characters, over "
                                                              f"the {MAX_CELL:,} limit; read as empty"))
                source.at[k, name] = ""
        for name in (columns.title, columns.genres):
            if CONTROL.search(cells[name]):
                neutralised.append(Neutralised(line, imdb_id, f"{_controls(cells[name])} removed from {name}"))
                source.at[k, name] = CONTROL.sub("", cells[name])
        title = source.at[k, columns.title].strip()
        if title.startswith(FORMULA_START):
            neutralised.append(Neutralised(line, imdb_id, f"title {_shown(title)} looks like a spreadsheet formula; "
                                                          "written with a leading ' so that it stays text"))
            source.at[k, columns.title] = "'" + title
    neutralised.sort(key=lambda n: n.row)
    return source, refused, neutralised


def _shown(text: str, most: int = 40) -> str:
    """A cell as a report can show it: short, and quoted with escapes where it holds unprintable characters."""
    short = text[:most] + ("..." if len(text) > most else "")
    return short if short.isprintable() else repr(short)


def _controls(text: str) -> str:
    """Names the control characters in `text`, NUL first: 'NUL bytes', 'control characters'."""
    return "NUL bytes" if "\x00" in text else "control characters"


def _records(source: pd.DataFrame, columns: Columns, images: Path) -> pd.DataFrame:
    """The source rows in the dataset's columns (plus `url`, `rating` and `votes`), all as strings."""
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
    blank = pd.Series([""] * len(source))
    url = source[columns.url].str.strip() if columns.url else blank
    rating = source[columns.rating] if columns.rating else blank
    votes = source[columns.votes] if columns.votes else blank
    return pd.DataFrame({"imdb_id": ids, "title": title, "year": year, "genres": genres,
                         "image": image, "url": url, "rating": rating, "votes": votes})


def _number_cell(value: float) -> str:
    """A parsed rating or vote count as metadata.csv holds it: empty for none, else text that reads back
    as the same number (a whole number without '.0'; repr is the shortest exact decimal)."""
    value = float(value)  # not numpy's float64, whose repr names its type
    if math.isnan(value):
        return ""
    return str(int(value)) if value.is_integer() else repr(value)


def _image_named(images: Path, imdb_id: str) -> str:
    """'<id>.jpg', or the first '<id>.<suffix>' there is: users' folders mix formats."""
    for suffix in IMAGE_SUFFIXES:
        if (images / f"{imdb_id}{suffix}").is_file():
            return f"{imdb_id}{suffix}"
    return f"{imdb_id}.jpg"


def _suffix_of(url: str) -> str:
    suffix = Path(re.sub(r"[?#].*$", "", url)).suffix.lower()
    return suffix if suffix in IMAGE_SUFFIXES else ".jpg"
