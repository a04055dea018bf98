import csv
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from lab.cli import main
from lab.data.synthetic import make_synthetic_posters

SHARED = Path(os.environ.get("LAB_SHARED", Path(__file__).resolve().parents[2] / "shared"))
POSTERS = SHARED / "posters"


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Tests never touch the user's image cache."""
    old = os.environ.get("LAB_CACHE")
    os.environ["LAB_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("LAB_CACHE")
    else:
        os.environ["LAB_CACHE"] = old


def shared_rows(n: int, start: int = 0) -> list[dict]:
    """`n` rows of the shared dataset's metadata, spread over the whole file."""
    if not (POSTERS / "metadata.csv").is_file():
        pytest.skip(f"the shared posters are not at {POSTERS} (set LAB_SHARED)")
    with open(POSTERS / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    step = len(rows) // n
    return rows[start::step][:n]


def write_dataset(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["imdb_id", "title", "year", "genres", "image"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return folder


def copy_real_subset(folder: Path, n: int) -> tuple[Path, list[dict]]:
    rows = shared_rows(n)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for r in rows:
        shutil.copyfile(POSTERS / r["image"], folder / r["image"])
    return write_dataset(folder, rows), rows


# Every kind of bad input a user's own data has: file name -> (how to make it, kept after conversion?)
def _bad_files(folder: Path, real_jpg: Path) -> dict[str, bool]:
    img = folder / "images"
    (img / "empty.jpg").write_bytes(b"")
    data = real_jpg.read_bytes()
    (img / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (img / "notimage.jpg").write_text("this is a text file, not a poster\n")
    Image.new("1", (9000, 9000)).save(img / "bomb.png")  # 81 Mpx, a few kB on disk
    poster = Image.open(real_jpg).convert("RGB")
    poster.convert("L").save(img / "grey.jpg")
    poster.convert("CMYK").save(img / "cmyk.jpg")
    rgba = poster.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(img / "alpha.png")
    return {"empty.jpg": False, "truncated.jpg": False, "notimage.jpg": False, "bomb.png": False,
            "grey.jpg": True, "cmyk.jpg": True, "alpha.png": True}


@pytest.fixture(scope="session")
def real_subset(tmp_path_factory):
    """60 real shared posters in the dataset format."""
    folder, _ = copy_real_subset(tmp_path_factory.mktemp("real") / "posters", 60)
    return folder


@pytest.fixture(scope="session")
def dirty_dataset(tmp_path_factory):
    """200 real posters plus one row of each bad kind; returns (folder, good ids, {bad id: reason word})."""
    folder, rows = copy_real_subset(tmp_path_factory.mktemp("dirty") / "posters", 200)
    kinds = _bad_files(folder, folder / rows[0]["image"])
    good = [r["imdb_id"] for r in rows]
    bad_rows, expect_bad = [], {}
    for k, (name, kept) in enumerate(kinds.items()):
        imdb_id = f"bad{k}"
        bad_rows.append({"imdb_id": imdb_id, "title": name, "year": "1984", "genres": "Horror",
                         "image": f"images/{name}"})
        if kept:
            good.append(imdb_id)
    reasons = {"empty.jpg": "empty file", "truncated.jpg": "truncated", "notimage.jpg": "not an image",
               "bomb.png": "decompression bomb"}
    expect_bad.update({f"bad{k}": reasons[n] for k, n in enumerate(kinds) if n in reasons})
    extra = [
        ("escape", "../../etc/passwd", "1990", "Drama", "escapes the dataset folder"),
        ("absolute", "/etc/passwd", "1990", "Drama", "is absolute"),
        (rows[1]["imdb_id"], rows[1]["image"], "1990", "Drama", "duplicate id"),
        ("nogenre", rows[2]["image"], "1990", "", "no genre"),
        ("noyear", rows[3]["image"], "", "Drama", "no year"),
        ("badyear", rows[3]["image"], "19x0", "Drama", "no valid year"),
        ("missing", "images/missing.jpg", "1990", "Drama", "missing"),
    ]
    for imdb_id, image, year, genres, reason in extra:
        bad_rows.append({"imdb_id": imdb_id, "title": "bad", "year": year, "genres": genres, "image": image})
        expect_bad[imdb_id] = reason
    write_dataset(folder, rows + bad_rows)
    return folder, good, expect_bad


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """240 synthetic posters: 6 genres x 4 decades, 10 of each primary combination."""
    return make_synthetic_posters(tmp_path_factory.mktemp("syn") / "posters", 240, seed=0)



def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """`lab ARGV` in this process: its exit status, stdout and stderr. The suite's one in-process runner."""
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def lab_ok(*argv) -> None:
    """`lab ARGV` in this process, which must succeed: for fixtures that need what it makes, not what it says."""
    try:
        main([str(a) for a in argv])
    except SystemExit as e:
        assert e.code in (0, None), f"lab {' '.join(map(str, argv))} exited {e.code}"


def start_and_kill(args: list[str], state: Path, env: dict | None = None) -> None:
    """Start a training command and SIGKILL it as soon as its first resumable state is on disk."""
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


# Fixtures that train a run or read real posters through a network: every test using one is `slow`, so that
# `pytest -m "not slow"` is a quick inner loop. CI runs everything.
HEAVY_FIXTURES = {"trained", "trained_run", "half_run", "demo", "real_lab", "lab_runs", "real_pixels", "horror_2000s",
                  "app_runs"}


def chromium() -> str:
    """Headless Chromium for the browser tests (of `lab report` and `lab app`), or skip where there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("Chromium is not installed (Debian: apt-get install chromium chromium-driver); the browser "
                "tests need it")


def pytest_collection_modifyitems(items):
    for item in items:
        if HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
