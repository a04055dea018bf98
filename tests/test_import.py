import csv
import functools
import http.server
import shutil
import threading

import pandas as pd
import pytest

from lab.data.importer import KAGGLE, Columns, import_dataset
from lab.data.metadata import read_dataset
from lab.data.report import check_dataset
from lab.errors import LabError


def write_kaggle_csv(path, rows):
    """rows: (imdbId, title, year, genres, poster URL); written as Kaggle's latin-1 MovieGenre.csv."""
    with open(path, "w", newline="", encoding="latin-1", errors="replace") as f:
        w = csv.writer(f)
        w.writerow(["imdbId", "Imdb Link", "Title", "IMDB Score", "Genre", "Poster"])
        for imdb_id, title, year, genres, url in rows:
            w.writerow([imdb_id, f"http://www.imdb.com/title/tt{imdb_id}", f"{title} ({year})" if year else title,
                        "6.5", genres, url])


@pytest.fixture
def kaggle_source(dirty_dataset, tmp_path):
    """The dirty dataset as Kaggle ships it: MovieGenre.csv plus a folder of <imdbId>.jpg."""
    folder, good, _ = dirty_dataset
    table = pd.read_csv(folder / "metadata.csv", dtype=str, keep_default_na=False)
    images = tmp_path / "SampleMoviePosters"
    images.mkdir()
    rows = []
    for rec in table.itertuples():
        src = folder / rec.image
        if rec.imdb_id in ("escape", "absolute", "missing") or not src.resolve().is_relative_to(folder.resolve()):
            continue  # Kaggle names files by id, so paths cannot escape; these cases are tested elsewhere
        if not src.is_file():
            continue
        if rec.imdb_id.startswith("bad") or rec.imdb_id in ("nogenre", "noyear", "badyear"):
            shutil.copyfile(src, images / f"{rec.imdb_id}.jpg")
        elif rec.Index < 200:
            shutil.copyfile(src, images / f"{rec.imdb_id}.jpg")
        rows.append((rec.imdb_id, "Café Ünïcode" if rec.Index == 0 else rec.title,
                     "" if rec.imdb_id in ("noyear", "badyear") else rec.year, rec.genres, ""))
    rows.append(("../../etc/passwd", "Escape", "1990", "Drama", ""))
    rows.append(("7777777", "Missing File", "1990", "Drama", ""))
    write_kaggle_csv(tmp_path / "MovieGenre.csv", rows)
    return tmp_path / "MovieGenre.csv", images, good


def test_kaggle_import_keeps_every_good_poster_and_names_every_bad_one(kaggle_source, tmp_path):
    csv_path, images, good = kaggle_source
    report = import_dataset(csv_path, images, tmp_path / "out", KAGGLE, progress=False)
    table = read_dataset(tmp_path / "out")
    assert sorted(table.posters["imdb_id"]) == sorted(good) and report.kept == len(good)
    reasons = {s.imdb_id: s.reason for s in report.skipped}
    assert "empty file" in reasons["bad0"] and "truncated" in reasons["bad1"]
    assert "not an image" in reasons["bad2"] and "decompression bomb" in reasons["bad3"]
    assert "not a plain name" in reasons["../../etc/passwd"] and "missing" in reasons["7777777"]
    assert "no year" in reasons["noyear"] and "no genre" in reasons["nogenre"]
    assert any("duplicate id" in r for r in reasons.values())
    # The title lost its '(YYYY)', which became the year; Latin-1 text survived.
    first = table.posters.set_index("imdb_id").loc[good[0]]
    assert first["title"] == "Café Ünïcode" and 1900 < first["year"] < 2030
    assert check_dataset(tmp_path / "out", progress=False).problems == []


def test_generic_csv_import_with_named_columns(real_subset, tmp_path):
    source = pd.read_csv(real_subset / "metadata.csv", dtype=str)
    source = source.rename(columns={"imdb_id": "movie", "title": "name", "year": "released", "genres": "kinds",
                                    "image": "file"})
    source["kinds"] = source["kinds"].str.replace("|", ";")
    source.to_csv(tmp_path / "mine.csv", index=False)
    columns = Columns(id="movie", title="name", year="released", genres="kinds", image="file", genre_sep=";")
    report = import_dataset(tmp_path / "mine.csv", real_subset, tmp_path / "out", columns, progress=False)
    imported, original = read_dataset(tmp_path / "out"), read_dataset(real_subset)
    assert report.kept == len(original) == len(imported) and not report.skipped
    assert list(imported.posters["genres"]) == list(original.posters["genres"])
    with pytest.raises(LabError, match="lacks the column.* genre; its columns are"):
        import_dataset(tmp_path / "mine.csv", real_subset, tmp_path / "o2", Columns("movie", "name", "genre"))


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):
        self.hits.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def poster_server(real_subset):
    handler = functools.partial(_CountingHandler, directory=str(real_subset / "images"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _CountingHandler.hits = []
    yield f"http://127.0.0.1:{server.server_address[1]}", _CountingHandler.hits
    server.shutdown()


def test_download_is_parallel_bounded_and_resumable(real_subset, poster_server, tmp_path):
    base, hits = poster_server
    table = read_dataset(real_subset)
    rows = [(r.imdb_id, r.title, r.year, "|".join(r.genres), f"{base}/{r.imdb_id}.jpg")
            for r in table.posters.itertuples()]
    rows.append(("404404", "Dead Link", "1999", "Drama", f"{base}/404404.jpg"))
    rows.append(("555", "Not HTTP", "1999", "Drama", "file:///etc/passwd"))
    write_kaggle_csv(tmp_path / "MovieGenre.csv", rows)
    out = tmp_path / "out"
    # The test server is on loopback, which --download refuses unless allowed (see test_faults.py).
    report = import_dataset(tmp_path / "MovieGenre.csv", None, out, KAGGLE, download=True, workers=4,
                            progress=False, allow_private=True)
    assert report.kept == report.downloaded == len(table)
    reasons = {s.imdb_id: s.reason for s in report.skipped}
    assert "HTTP 404" in reasons["404404"] and "not an http" in reasons["555"]
    for rec in table.posters.itertuples():
        assert (out / "images" / f"{rec.imdb_id}.jpg").read_bytes() == open(rec.path, "rb").read()
    # A rerun fetches only what is still missing: one poster deleted, plus the dead link.
    (out / "images" / f"{table.posters['imdb_id'].iat[0]}.jpg").unlink()
    hits.clear()
    again = import_dataset(tmp_path / "MovieGenre.csv", None, out, KAGGLE, download=True, progress=False,
                           allow_private=True)
    assert sorted(hits) == sorted([f"/{table.posters['imdb_id'].iat[0]}.jpg", "/404404.jpg"])
    assert again.kept == len(table) and not list((out / "images").glob("*.part"))
