import csv
import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import POSTERS, copy_real_subset, run_cli
from lab.data.cache import load_image_cache
from lab.data.filters import PosterFilter, apply_filter, parse_decade
from lab.data.images import BadImage, decode_poster, parse_size
from lab.data.metadata import read_dataset
from lab.data.poster_dataset import open_posters
from lab.data.report import check_dataset
from lab.data.split import PARTS, split_posters
from lab.data.synthetic import make_synthetic_posters
from lab.errors import LabError


def test_real_subset_reads_with_labels(real_subset):
    table = read_dataset(real_subset)
    assert len(table) == 60 and not table.skipped
    rows = {r["imdb_id"]: r for r in csv.DictReader(open(real_subset / "metadata.csv"))}
    for rec in table.posters.itertuples():
        assert rec.genres == tuple(rows[rec.imdb_id]["genres"].split("|"))
        assert rec.decade == int(rows[rec.imdb_id]["year"]) // 10 * 10
    assert set(table.genres) <= set(g for r in rows.values() for g in r["genres"].split("|"))


def test_whole_shared_dataset_counts():
    table = read_dataset(POSTERS) if POSTERS.exists() else pytest.skip("no shared posters")
    assert len(table) == 10800 and len(table.genres) == 18
    assert table.decade_counts()[1980] == 713 and table.genre_counts()["Film-Noir"] == 64


def test_dirty_dataset_keeps_every_good_poster_and_names_every_bad_one(dirty_dataset):
    folder, good, expect_bad = dirty_dataset
    summary = check_dataset(folder, progress=False)
    assert sorted(summary.table.posters["imdb_id"]) == sorted(good)
    text = "\n".join(summary.problems)
    for imdb_id, reason in expect_bad.items():
        assert any(f"id {imdb_id})" in p and reason in p for p in summary.problems), (imdb_id, reason, text)
    for name in ("empty.jpg", "truncated.jpg", "notimage.jpg", "bomb.png"):
        assert name in text
    assert len(summary.problems) == len(expect_bad)


def test_converted_images_are_rgb(dirty_dataset):
    folder = dirty_dataset[0]
    for name in ("grey.jpg", "cmyk.jpg", "alpha.png"):
        pixels = decode_poster(folder / "images" / name, (64, 96))
        assert pixels.shape == (96, 64, 3) and pixels.dtype == np.uint8
    grey = decode_poster(folder / "images" / "grey.jpg")
    assert np.abs(grey[..., 0].astype(int) - grey[..., 2]).max() <= 1  # grey stays grey
    alpha = decode_poster(folder / "images" / "alpha.png")
    assert alpha.mean() > decode_poster(folder / "images" / "grey.jpg").mean() - 5  # laid on white


@pytest.mark.parametrize("name,reason", [("empty.jpg", "empty file"), ("truncated.jpg", "truncated"),
                                         ("notimage.jpg", "not an image"), ("bomb.png", "bomb")])
def test_bad_images_raise_bad_image(dirty_dataset, name, reason):
    with pytest.raises(BadImage, match=reason):
        decode_poster(dirty_dataset[0] / "images" / name, (64, 96))


def test_resize_crops_to_size_without_stretching(tmp_path):
    wide = np.zeros((100, 300, 3), np.uint8)
    wide[:, :100] = (255, 0, 0)  # red band on the left third only
    wide[:, 100:200] = (0, 255, 0)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    out = decode_poster(tmp_path / "wide.png", (64, 96))
    assert out.shape == (96, 64, 3)
    # The centre crop of a wide image holds only its middle (green) third: nothing was squeezed in.
    assert out[..., 1].mean() > 240 and out[..., 0].mean() < 10


def test_parse_size():
    assert parse_size("64x96") == (64, 96) and parse_size("128X192") == (128, 192)
    for bad in ("64", "64x", "0x96", "axb"):
        with pytest.raises(LabError):
            parse_size(bad)


def test_missing_or_malformed_dataset_errors_say_the_format(tmp_path):
    with pytest.raises(LabError, match="metadata.csv"):
        read_dataset(tmp_path / "nothing")
    (tmp_path / "d").mkdir()
    with pytest.raises(LabError, match="lab data import"):
        read_dataset(tmp_path / "d")
    (tmp_path / "d" / "metadata.csv").write_text("imdb_id,title,genres,image\n1,a,Drama,a.jpg\n")
    with pytest.raises(LabError, match=r"lacks the column\(s\) year"):
        read_dataset(tmp_path / "d")


def test_filters_case_insensitive_and_counted(real_subset):
    table = read_dataset(real_subset)
    genre = table.genres[0]
    subset, flt = apply_filter(table, PosterFilter.from_options([genre.upper()]))
    assert flt.genres == (genre,) and len(subset) == table.genre_counts()[genre]
    assert all(genre in gs for gs in subset.posters["genres"])
    decade = int(table.posters["decade"].iloc[0])
    subset, _ = apply_filter(table, PosterFilter.from_options(decades=[f"{decade}s"]))
    assert (subset.posters["decade"] == decade).all() and len(subset) == table.decade_counts()[decade]
    subset, _ = apply_filter(table, PosterFilter(year_min=2000, year_max=2004))
    assert subset.posters["year"].between(2000, 2004).all()
    with pytest.raises(LabError, match="known genres: " + ", ".join(table.genres)):
        apply_filter(table, PosterFilter(genres=("Horor",)))
    with pytest.raises(LabError, match=rf"--genre {genre} kept \d+, --decade 1900 kept 0"):
        apply_filter(table, PosterFilter(genres=(genre,), decades=(1900,)))
    assert parse_decade("1980s") == parse_decade(1980) == 1980
    with pytest.raises(LabError):
        parse_decade("1985")


def test_split_deterministic_disjoint_and_covers_every_genre():
    table = read_dataset(POSTERS) if POSTERS.exists() else pytest.skip("no shared posters")
    split = split_posters(table, seed=0)
    assert split == split_posters(table, seed=0) and split != split_posters(table, seed=1)
    ids = [set(split[p]) for p in PARTS]
    assert sum(map(len, ids)) == len(table) and set.union(*ids) == set(table.posters["imdb_id"])
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    for part, frac in zip(PARTS, (0.8, 0.1, 0.1)):
        assert abs(len(split[part]) / len(table) - frac) < 0.01
        genres_there = {g for gs in table.posters.set_index("imdb_id").loc[split[part], "genres"] for g in gs}
        assert genres_there == set(table.genres), part
    # Row order does not change which part a poster is in.
    shuffled = table.subset(np.random.default_rng(0).permutation(len(table)))
    assert split_posters(shuffled, seed=0) == split


def test_filtered_runs_share_the_whole_dataset_split(synthetic):
    everything = open_posters(synthetic, progress=False)
    horror = open_posters(synthetic, PosterFilter(genres=("horror",)), progress=False)
    for part in PARTS:
        all_ids = set(everything.table.posters["imdb_id"].iloc[everything.parts[part]])
        horror_ids = set(horror.table.posters["imdb_id"].iloc[horror.parts[part]])
        assert horror_ids and horror_ids <= all_ids


def test_poster_dataset_items_match_cache_and_labels(synthetic):
    posters = open_posters(synthetic, PosterFilter(genres=("Comedy",)), progress=False)
    ds = posters.dataset("train")
    image, genres, decade, rating = ds[3]
    row = posters.parts["train"][3]
    rec = posters.table.posters.iloc[row]
    assert image.shape == (3, 96, 64) and str(image.dtype) == "torch.uint8"
    assert np.array_equal(image.permute(1, 2, 0).numpy(), decode_poster(rec["path"], (64, 96)))
    assert [posters.genres[j] for j in np.flatnonzero(genres.numpy())] == sorted(rec["genres"])
    assert posters.decades[decade] == rec["decade"]
    assert "Comedy" in rec["genres"]


def test_cache_is_reused_and_rebuilt_when_size_or_data_change(tmp_path):
    folder = make_synthetic_posters(tmp_path / "d", 20, seed=3)
    table = read_dataset(folder)
    first = load_image_cache(table, (32, 48), progress=False)
    mtime = os.stat(first.path).st_mtime_ns
    again = load_image_cache(read_dataset(folder), (32, 48), progress=False)
    assert again.path == first.path and os.stat(again.path).st_mtime_ns == mtime
    bigger = load_image_cache(table, (64, 96), progress=False)
    assert bigger.path != first.path and bigger.images.shape == (20, 96, 64, 3)
    Image.new("RGB", (64, 96), (255, 0, 0)).save(folder / "images" / "syn00000.jpg")
    changed = load_image_cache(read_dataset(folder), (32, 48), progress=False)
    assert changed.path != first.path and changed.images[0].mean(axis=(0, 1))[0] > 200


def _load_in_process(folder, queue):
    cache = load_image_cache(read_dataset(folder), (32, 48), progress=False, workers=1)
    queue.put((str(cache.path), cache.images.sum(dtype=np.int64)))


@pytest.mark.slow
def test_two_processes_building_the_cache_at_once_agree(tmp_path):
    folder = make_synthetic_posters(tmp_path / "d", 150, seed=4)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_load_in_process, args=(folder, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    assert results[0] == results[1]
    expected = sum(int(decode_poster(p, (32, 48)).sum(dtype=np.int64))
                   for p in read_dataset(folder).posters["path"])
    assert results[0][1] == expected
    # Only this test's own folders: other tests may leave a killed run's temporaries beside it.
    assert not list(tmp_path.glob("**/*.tmp*"))
    assert not list(Path(os.environ["LAB_CACHE"]).glob("**/*.tmp*"))


@pytest.mark.slow
def test_a_cache_build_held_by_another_process_is_waited_for_with_a_message_and_a_timeout(tmp_path, monkeypatch,
                                                                                         caplog):
    from lab.data import cache
    folder = make_synthetic_posters(tmp_path / "d", 12, seed=5)
    table = read_dataset(folder)
    lock_path = cache.cache_root() / f"posters-{cache.dataset_fingerprint(table)[:20]}-32x48.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(cache, "LOCK_TIMEOUT", 1)
    ctx = multiprocessing.get_context("spawn")
    held = ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(lock_path), held, 4))
    holder.start()
    try:
        assert held.wait(60)
        with pytest.raises(LabError, match="another process has been building the image cache"):
            load_image_cache(table, (32, 48), progress=False)
        assert "waiting for another process building the image cache" in caplog.text
    finally:
        holder.join()
    assert load_image_cache(table, (32, 48), progress=False).images.shape == (12, 48, 32, 3)  # once it is free


def _hold_lock(path, held, seconds):
    from filelock import FileLock
    with FileLock(path):
        held.set()
        time.sleep(seconds)


def test_synthetic_is_deterministic_and_depends_on_genre_and_decade(tmp_path):
    a = make_synthetic_posters(tmp_path / "a", 48, seed=7)
    b = make_synthetic_posters(tmp_path / "b", 48, seed=7)
    assert (a / "metadata.csv").read_text() == (b / "metadata.csv").read_text()
    assert all((a / "images" / p.name).read_bytes() == p.read_bytes() for p in (b / "images").iterdir())
    table = read_dataset(a)
    assert len(table) == 48 and not table.skipped
    # A nearest-centroid classifier on 8x12 thumbnails tells genre and decade apart: they are learnable.
    posters = open_posters(make_synthetic_posters(tmp_path / "c", 480, seed=1), size=(8, 12), progress=False)
    x = posters.images[np.arange(len(posters.table))].reshape(len(posters.table), -1).astype(np.float32)
    first_genre = posters.table.posters["genres"].map(lambda gs: gs[0]).to_numpy()
    for labels in (first_genre, posters.table.posters["decade"].to_numpy()):
        order = np.random.default_rng(0).permutation(480)
        train, test = order[:240], order[240:]
        classes = np.unique(labels)
        centroids = np.stack([x[train][labels[train] == c].mean(0) for c in classes])
        guess = classes[((x[test, None] - centroids[None]) ** 2).sum(-1).argmin(1)]
        assert (guess == labels[test]).mean() > 0.8


# ---- ratings: a bad cell means "no rating", never a lost poster ----

# The bad rating cells and a few good ones, and what each reads as (NaN: no rating).
RATING_CELLS = {"": np.nan, "n/a": np.nan, "0": np.nan, "11": np.nan, "7,5": np.nan, "NaN": np.nan,
                "7.5": 7.5, "10": 10.0, " 1 ": 1.0}
VOTES_CELLS = {"": np.nan, "-3": np.nan, "12.5": np.nan, "many": np.nan, "1398": 1398.0, "0": 0.0}


def _rating_dataset(folder: Path):
    """Real posters whose rating and votes cells are the cases above, then three with their real cells.

    Returns the folder, the rows written and {id: (rating, votes) expected}.
    """
    folder, rows = copy_real_subset(folder, len(RATING_CELLS) + 3)
    for row, cell in zip(rows, RATING_CELLS):
        row["rating"] = cell
    for row, cell in zip(rows, VOTES_CELLS):
        row["votes"] = cell
    pd.DataFrame(rows).to_csv(folder / "metadata.csv", index=False)

    def real(cell, cases):
        return cases[cell] if cell in cases else float(cell) if cell else np.nan
    expected = {r["imdb_id"]: (real(r["rating"], RATING_CELLS), real(r["votes"], VOTES_CELLS)) for r in rows}
    return folder, rows, expected


def _assert_ratings(table, expected, votes=True):
    got = table.posters.set_index("imdb_id").loc[list(expected)]
    np.testing.assert_array_equal(got["rating"].to_numpy(), [r for r, _ in expected.values()])  # NaN == NaN here
    np.testing.assert_array_equal(got["votes"].to_numpy(), [v if votes else np.nan for _, v in expected.values()])


def test_bad_rating_and_votes_cells_keep_the_poster_without_a_rating(tmp_path, capsys):
    folder, rows, expected = _rating_dataset(tmp_path / "d")
    assert "7,5" in (folder / "metadata.csv").read_text()  # the cells reach the file as the issue writes them
    table = read_dataset(folder)
    assert len(table) == len(rows) and not table.skipped
    _assert_ratings(table, expected)
    unrated = sum(np.isnan(r) for r, _ in expected.values())
    assert unrated == 6 and table.unrated() == unrated
    code, out, err = run_cli(capsys, "data", "check", str(folder))
    assert code == 0 and f"{len(rows)} posters" in out and "0 skipped" in out, err
    assert f"ratings: {len(rows) - unrated} rated, {unrated} without a usable rating" in out


def test_dataset_without_rating_columns_reads_as_all_unrated(real_subset, capsys):
    assert "rating" not in (real_subset / "metadata.csv").read_text().splitlines()[0]
    table = read_dataset(real_subset)
    assert len(table) == table.unrated() == 60 and table.posters["votes"].isna().all()
    code, out, _ = run_cli(capsys, "data", "check", str(real_subset))
    assert code == 0 and "ratings: 0 rated, 60 without a usable rating" in out


def _imported_cells(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "metadata.csv", dtype=str, keep_default_na=False).set_index("imdb_id")


def test_kaggle_import_reads_imdb_score_as_rating(tmp_path, capsys):
    folder, rows, expected = _rating_dataset(tmp_path / "d")
    pd.DataFrame({"imdbId": [r["imdb_id"] for r in rows], "Imdb Link": "",
                  "Title": [f"{r['title']} ({r['year']})" for r in rows], "IMDB Score": [r["rating"] for r in rows],
                  "Genre": [r["genres"] for r in rows], "Poster": ""}
                 ).to_csv(tmp_path / "MovieGenre.csv", index=False, encoding="latin-1", errors="replace")
    out = tmp_path / "out"
    code, printed, err = run_cli(capsys, "data", "import", "--kaggle-csv", str(tmp_path / "MovieGenre.csv"),
                                 "--images", str(folder / "images"), "--out", str(out))
    unrated = sum(np.isnan(r) for r, _ in expected.values())
    assert code == 0 and f"imported {len(rows)} posters" in printed and "0 rows skipped" in printed, err
    assert f"ratings: {len(rows) - unrated} rated, {unrated} without a usable rating" in printed
    table = read_dataset(out)
    assert len(table) == len(rows) and not table.skipped
    _assert_ratings(table, expected, votes=False)  # Kaggle's file has no vote counts
    report = json.loads((out / "import-report.json").read_text())
    assert report["kept"] == len(rows) and report["unrated"] == unrated
    cells = _imported_cells(out)
    assert list(cells.columns[-2:]) == ["rating", "votes"] and (cells["votes"] == "").all()
    assert all(cells.at[i, "rating"] == "" for i, (r, _) in expected.items() if np.isnan(r))


def test_generic_import_with_rating_and_votes_columns(tmp_path, capsys):
    folder, rows, expected = _rating_dataset(tmp_path / "d")
    source = pd.read_csv(folder / "metadata.csv", dtype=str, keep_default_na=False).rename(columns={
        "imdb_id": "movie", "title": "name", "year": "released", "genres": "kinds", "image": "file",
        "rating": "score", "votes": "n_votes"})
    # Hostile rating cells: a 10 MB one that would read as 7.555... if it were parsed, a formula, a NUL.
    hostile = {"huge": "7." + "5" * 10_000_000, "formula": "=1+2", "nul": "7\x00"}
    extra = [{**source.iloc[-1].to_dict(), "movie": i, "score": cell, "n_votes": "1" * 5000}
             for i, cell in hostile.items()]
    pd.concat([source, pd.DataFrame(extra)]).to_csv(tmp_path / "mine.csv", index=False)
    expected.update({i: (np.nan, np.nan) for i in hostile})
    out = tmp_path / "out"
    args = ["data", "import", "--csv", str(tmp_path / "mine.csv"), "--images", str(folder), "--id-col", "movie",
            "--title-col", "name", "--year-col", "released", "--genre-col", "kinds", "--image-col", "file"]
    code, printed, err = run_cli(capsys, *args, "--rating-col", "score", "--votes-col", "n_votes", "--out", str(out))
    unrated = sum(np.isnan(r) for r, _ in expected.values())
    assert code == 0 and f"imported {len(expected)} posters" in printed and "0 rows skipped" in printed, err
    assert f"ratings: {len(expected) - unrated} rated, {unrated} without a usable rating" in printed
    assert "(id huge): score cell is 10,000,002 characters, over the 4,096 limit; read as empty" in printed
    assert all(f"(id {i}): n_votes cell is 5,000 characters" in printed for i in hostile)
    table = read_dataset(out)
    assert len(table) == len(expected) and not table.skipped
    _assert_ratings(table, expected)
    assert json.loads((out / "import-report.json").read_text())["unrated"] == unrated
    cells = _imported_cells(out)
    assert (cells.loc[list(hostile), ["rating", "votes"]] == "").all().all()
    code, _, err = run_cli(capsys, *args, "--rating-col", "stars", "--out", str(tmp_path / "o2"))
    assert code == 2 and "lacks the column(s) stars" in err and err.count("\n") == 1


def test_a_relative_and_an_absolute_path_to_one_dataset_share_one_cache(tmp_path, monkeypatch):
    folder = make_synthetic_posters(tmp_path / "d", 12, seed=5)
    monkeypatch.chdir(tmp_path)
    absolute = load_image_cache(read_dataset(folder.resolve()), (32, 48), progress=False)
    relative = load_image_cache(read_dataset(Path("d")), (32, 48), progress=False)
    assert relative.path == absolute.path
    # A changed image is another dataset: another cache.
    image = folder / "images" / sorted(os.listdir(folder / "images"))[0]
    os.utime(image, ns=(0, 0))
    assert load_image_cache(read_dataset(Path("d")), (32, 48), progress=False).path != absolute.path
