"""Faults: damaged run files, kills, two trainers on one folder, full disks, hostile CSV cells.

Every case is a real one made on disk (a truncated file, a pickle that would run a command, a
file-size limit, a read-only mount, a SIGKILL); every user-facing one must end as one line on
stderr with exit status 2, and nothing good may be lost.
"""

import contextlib
import csv
import http.server
import json
import logging
import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli
from lab.checkpoint import load_state, load_weights, save_json, save_weights
from lab.data.download import refusal
from lab.data.importer import Columns, import_dataset
from lab.data.metadata import read_dataset
from lab.data.poster_dataset import open_posters
from lab.data.synthetic import make_synthetic_posters
from lab.errors import LabError
from lab.gan.options import GanOptions
from lab.gan.train import train_gan
from lab.runs import Run

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(size="32x48", channels=8, z_dim=16, batch_size=16, grid_every=5, checkpoint_every=5, log_every=5)


def one_line_error(code, err, *words):
    """Exit status 2, one line on stderr (after any warnings or a progress bar), naming every word."""
    errors = [line[line.index("error: "):] for line in err.splitlines() if "error: " in line]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert all(w in errors[0] for w in words), (words, errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def posters(tmp_path_factory):
    return make_synthetic_posters(tmp_path_factory.mktemp("faults") / "posters", 120, seed=4, size=(32, 48))


@pytest.fixture(scope="module")
def half_run(posters, tmp_path_factory):
    """A GAN run of 10 steps killed after its step-5 checkpoint (trained to 5, its options say 10)."""
    path = tmp_path_factory.mktemp("runs") / "half"
    opts = GanOptions(**{"data": str(posters), **TINY, "steps": 5})
    train_gan(opts, Run.create(path, "", vars(opts).copy()), progress=False)
    save_json({**vars(opts), "steps": 10}, path / "options.json")
    return path


@pytest.fixture
def run(half_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(half_run, copy)
    return copy


def _sample(capsys, run, out):
    return run_cli(capsys, "sample", run, "--genre", "Drama", "--decade", "1990", "-n", "2", "--out", out)


# ---- checkpoints ----

class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_that_would_run_code_is_refused_in_one_line(run, tmp_path, capsys):
    marker = tmp_path / "the-command-ran"
    with open(run / "checkpoints" / "state.pt", "wb") as f:
        pickle.dump({"step": _RunsACommand(marker)}, f)
    code, _, err = run_cli(capsys, "train-gan", "--out", run, "--resume")
    one_line_error(code, err, "state.pt", "would run code", "nothing was run")
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage"])
def test_a_damaged_training_state_is_one_line_and_names_the_file(run, capsys, damage):
    state = run / "checkpoints" / "state.pt"
    data = state.read_bytes()
    state.write_bytes({"truncate": data[:len(data) // 2], "empty": b"", "garbage": os.urandom(len(data))}[damage])
    code, _, err = run_cli(capsys, "train-gan", "--out", run, "--resume")
    one_line_error(code, err, str(state), "damaged", "delete it and resume")


def test_damaged_sampling_weights_fall_back_to_the_state_copy_then_fail_in_one_line(run, tmp_path, capsys, caplog):
    assert _sample(capsys, run, tmp_path / "intact")[0] == 0
    weights = run / "checkpoints" / "g_ema.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # a disk that filled up, a copy that broke
    with caplog.at_level(logging.WARNING):
        assert _sample(capsys, run, tmp_path / "fallback")[0] == 0
    assert any("g_ema.safetensors is damaged" in r.message and "state.pt instead" in r.message for r in caplog.records)
    files = sorted(p.name for p in (tmp_path / "intact").glob("*.png"))
    assert all((tmp_path / "intact" / f).read_bytes() == (tmp_path / "fallback" / f).read_bytes() for f in files)
    (run / "checkpoints" / "state.pt").write_bytes(b"")
    code, _, err = _sample(capsys, run, tmp_path / "none")
    one_line_error(code, err, str(weights), "damaged", "retrain")


def test_best_and_last_stand_in_for_each_other(tmp_path, caplog):
    torch.manual_seed(0)
    best, last = torch.nn.Linear(4, 2), torch.nn.Linear(4, 2)
    save_weights(best, tmp_path / "best.safetensors")
    save_weights(last, tmp_path / "last.safetensors")
    (tmp_path / "best.safetensors").write_bytes((tmp_path / "best.safetensors").read_bytes()[:-7])
    loaded = torch.nn.Linear(4, 2)
    with caplog.at_level(logging.WARNING):
        load_weights(loaded, tmp_path / "best.safetensors")
    assert torch.equal(loaded.weight, last.weight) and "using" in caplog.text and "last.safetensors" in caplog.text
    (tmp_path / "last.safetensors").unlink()
    with pytest.raises(LabError, match="best.safetensors is damaged"):
        load_weights(loaded, tmp_path / "best.safetensors")
    save_weights(torch.nn.Linear(3, 2), tmp_path / "last.safetensors")
    with pytest.raises(LabError, match="does not fit this model"):  # another model is not damage: no fallback
        load_weights(loaded, tmp_path / "last.safetensors")


# ---- run files ----

@pytest.mark.parametrize("name", ["options.json", "split.json", "gan.json", "diffusion.json", "evaluation-test.json"])
def test_a_torn_run_file_is_one_line_naming_it_and_what_to_do(run, tmp_path, capsys, name):
    path = run / name
    text = path.read_text() if path.exists() else json.dumps({"steps": 10, "model": {"size": [32, 48]}})
    path.write_text(text[:len(text) // 2])
    code, _, err = _sample(capsys, run, tmp_path / "s")
    line = one_line_error(code, err, str(path), "damaged")
    assert ("train a new run" if name == "options.json" else "lab evaluate" if "evaluation" in name
            else "--resume") in line


def test_a_torn_classifier_file_is_one_line(tmp_path, capsys, posters):
    save_json({"data": str(posters)}, tmp_path / "clf" / "options.json")
    (tmp_path / "clf" / "classifier.json").write_text('{"genres": ["Drama"], "mod')
    code, _, err = run_cli(capsys, "predict", tmp_path / "clf", posters / "images" / "syn00000.jpg")
    one_line_error(code, err, "classifier.json", "damaged")


def test_a_deleted_split_is_written_again_by_resume(run, capsys):
    before = json.loads((run / "split.json").read_text())
    (run / "split.json").write_text('{"seed": 0, "train": ["syn0')
    code, _, err = run_cli(capsys, "train-gan", "--out", run, "--resume")
    one_line_error(code, err, "split.json", "delete it and resume")
    (run / "split.json").unlink()
    assert run_cli(capsys, "train-gan", "--out", run, "--resume")[0] == 0
    assert json.loads((run / "split.json").read_text()) == before


def test_a_torn_last_metrics_line_is_dropped_and_repaired_on_resume(run, caplog):
    records = Run(run).metrics()
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"time": 1.5, "step": 10, "d_lo')
    with caplog.at_level(logging.WARNING):
        assert Run(run).metrics() == records
    assert "torn last line" in caplog.text
    Run.create(run, "", {}, resume=True)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == records


def test_a_resumed_run_replaces_the_records_written_past_its_checkpoint(tmp_path):
    run = Run.create(tmp_path / "r", "", {})
    for step in (5, 10, 15, 10, 15, 20):  # killed after logging 15, resumed from its step-5 checkpoint
        run.log_metrics({"step": step, "loss": step / 100})
    assert [(r["step"], r["loss"]) for r in run.metrics()] == [(5, .05), (10, .1), (15, .15), (20, .2)]
    assert len(run.metrics()) == 4 and run.metrics()[1]["time"] >= run.metrics()[0]["time"]


def test_torn_samples_and_truncated_sample_images_are_one_line(run, tmp_path, capsys):
    out = tmp_path / "s"
    assert _sample(capsys, run, out)[0] == 0
    png = next(out.glob("drama-*.png"))
    png.write_bytes(png.read_bytes()[:200])
    code, _, err = run_cli(capsys, "score-samples", out, "--classifier", run)
    one_line_error(code, err, str(png), "lab sample")
    (out / "samples.json").write_text((out / "samples.json").read_text()[:50])
    code, _, err = run_cli(capsys, "score-samples", out, "--classifier", run)
    one_line_error(code, err, "samples.json", "damaged", "lab sample")


@pytest.mark.parametrize("damage", ["truncated", "other size"])
def test_a_damaged_image_cache_is_rebuilt_not_trusted(posters, caplog, damage):
    first = open_posters(posters, size=(32, 48), progress=False)
    expected = np.array(first.cache.images)
    path = first.cache.path
    del first
    if damage == "truncated":
        os.truncate(path, path.stat().st_size - 1000)
    else:
        np.save(path, np.zeros((3, 48, 32, 3), np.uint8))
    with caplog.at_level(logging.WARNING):
        again = open_posters(posters, size=(32, 48), progress=False)
    assert "is damaged" in caplog.text and np.array_equal(np.asarray(again.cache.images), expected)


# ---- two processes, one folder; finished runs ----

@pytest.mark.slow
def test_a_second_trainer_on_a_run_folder_is_refused_until_the_first_dies(run, capsys):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from lab.runs import Run; "
                               f"Run.create({str(run)!r}, '', {{}}, resume=True); print('locked', flush=True); "
                               "time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = run_cli(capsys, "train-gan", "--out", run, "--resume")
        one_line_error(code, err, str(run), "another process")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert run_cli(capsys, "train-gan", "--out", run, "--resume")[0] == 0  # the killed holder left no lock
    code, _, err = run_cli(capsys, "train-gan", "--out", run, "--resume")
    one_line_error(code, err, "finished training", "nothing to resume")


# ---- full disk, read-only folders ----

def _file_size_limit(limit):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # writes past it fail with EFBIG
    return apply


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_the_previous_checkpoint_stays(run):
    state = run / "checkpoints" / "state.pt"
    before = state.read_bytes()
    grids = max(p.stat().st_size for p in (run / "grids").iterdir())
    limit = len(before) // 2
    assert grids < limit, "the limit must stop the checkpoint, not the grid before it"
    result = subprocess.run([sys.executable, "-m", "lab.cli", "train-gan", "--out", str(run), "--resume"],
                            capture_output=True, text=True, preexec_fn=_file_size_limit(limit))
    one_line_error(result.returncode, result.stderr, str(state), "File too large", "previous state.pt is intact")
    assert state.read_bytes() == before and load_state(state)["step"] == 5
    assert not list((run / "checkpoints").glob("*.tmp*"))
    result = subprocess.run([sys.executable, "-m", "lab.cli", "train-gan", "--out", str(run), "--resume"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and load_state(state)["step"] == 10, result.stderr


@contextlib.contextmanager
def _read_only(folder: Path):
    """`folder` made unwritable, also for root (a read-only bind mount), or the test is skipped."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield
        folder.chmod(0o755)
        return
    mount = shutil.which("mount")
    made = mount and subprocess.run(f"mount --bind '{folder}' '{folder}' && mount -o remount,bind,ro '{folder}'",
                                    shell=True, capture_output=True).returncode == 0
    if not made:
        subprocess.run(["umount", str(folder)], capture_output=True)
        pytest.skip("running as root without the right to mount: no folder can be made unwritable")
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_an_unwritable_out_is_one_line(posters, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    with _read_only(locked):
        code, _, err = run_cli(capsys, "train-gan", "--data", posters, "--size", "32x48", "--channels", "8",
                               "--steps", "2", "--out", locked / "run")
    one_line_error(code, err, str(locked / "run"), "choose another --out")


def test_an_unwritable_checkpoint_folder_keeps_the_previous_checkpoint(run, capsys):
    state = run / "checkpoints" / "state.pt"
    before = state.read_bytes()
    with _read_only(run / "checkpoints"):
        code, _, err = run_cli(capsys, "train-gan", "--out", run, "--resume")
    one_line_error(code, err, str(state), "previous state.pt is intact")
    assert state.read_bytes() == before


# ---- hostile CSV cells ----

def test_hostile_csv_cells_are_refused_or_neutralised_and_named(real_subset, tmp_path):
    table = read_dataset(real_subset)
    good = [(r.imdb_id, r.title, str(r.year), "|".join(r.genres), r.image) for r in table.posters.itertuples()]
    first = good[0]
    hostile = [  # (row cells, how the report names the row, what it must say about it)
        (["formula", "=cmd|' /C calc'!A0", "1999", "Drama", first[4]], "(id formula)", "spreadsheet formula"),
        (["plusformula", "+SUM(A1:A9)", "1999", "Drama", first[4]], "(id plusformula)", "spreadsheet formula"),
        (["nul", "Night\x00mare", "1984", "Horror", first[4]], "(id nul)", "NUL bytes removed from title"),
        (["huge", "A" * 10_000_000, "1999", "Drama", first[4]], "(id huge)", "over the 4,096 limit"),
        (["genreformula", "Fine", "1999", "=HYPERLINK(\"http://x\")", first[4]], "(id genreformula)", "not a genre"),
        (["nul\x00id", "Fine", "1999", "Drama", first[4]], "(id 'nul\\x00id')", "id has control characters"),
        (["nulpath", "Fine", "1999", "Drama", "images/a\x00.jpg"], "(id nulpath)", "image has control characters"),
        (["extra", "Fine", "1999", "Drama", first[4], "surplus"], "(id extra)", "6 cells where the header has 5"),
    ]
    with open(tmp_path / "source.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["imdb_id", "title", "year", "genres", "image"])
        w.writerow(["cafe", "Café Ünïcode", "1999", "Drama", first[4]])  # UTF-8 beyond ASCII: a UTF-8 file
        w.writerows(good[1:])
        w.writerows(cells for cells, _, _ in hostile)
    with open(tmp_path / "source.csv", "ab") as f:
        f.write(b"latin,Caf\xe9 Latin,1999,Drama," + first[4].encode() + b"\n")  # a cell that is not UTF-8
    columns = Columns(id="imdb_id", title="title", genres="genres", year="year", image="image")
    report = import_dataset(tmp_path / "source.csv", real_subset, tmp_path / "out", columns, progress=False)

    imported = read_dataset(tmp_path / "out").posters.set_index("imdb_id")
    kept = {"cafe", "latin", "formula", "plusformula", "nul"} | {g[0] for g in good[1:]}
    assert set(imported.index) == kept and report.kept == len(kept)  # no good row lost
    lines = [str(x) for x in report.skipped + report.neutralised]
    for _, named, said in hostile:
        assert any(named in line and said in line for line in lines), (named, said, lines)
    notes = {n.imdb_id: n.what for n in report.neutralised}
    assert set(notes) == {"formula", "plusformula", "nul", "latin"} and len(report.skipped) == 5
    assert "read as Latin-1" in notes["latin"] and imported.loc["latin", "title"] == "Café Latin"
    assert imported.loc["cafe", "title"] == "Café Ünïcode" and imported.loc["nul", "title"] == "Nightmare"
    assert imported.loc["formula", "title"] == "'=cmd|' /C calc'!A0"
    assert not any(str(t).startswith(("=", "+", "-", "@")) for t in imported["title"])
    report_file = json.loads((tmp_path / "out" / "import-report.json").read_text())
    assert len(report_file["neutralised"]) == 4 and len(report_file["skipped"]) == 5


class _Redirect(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):
        self.hits.append(self.path)
        self.send_response(302)
        self.send_header("Location", "ftp://127.0.0.1/passwd")  # a scheme urllib itself would follow
        self.end_headers()

    def log_message(self, *args):
        pass


def test_download_refuses_other_schemes_and_private_addresses_and_redirects_to_them(real_subset, tmp_path):
    for url in ("file:///etc/passwd", "ftp://example.org/a.jpg", "javascript:alert(1)", "http:///nohost.jpg"):
        assert refusal(url) and "refused" in refusal(url), url
    for url in ("http://127.0.0.1:8000/a.jpg", "http://localhost/a.jpg", "http://10.1.2.3/a.jpg",
                "http://192.168.0.1/a.jpg", "http://169.254.169.254/latest/meta-data", "http://[::1]/a.jpg",
                "http://[::ffff:127.0.0.1]/a.jpg", "http://0.0.0.0/a.jpg", "http://100.64.0.1/a.jpg"):
        assert "loopback, private or link-local" in refusal(url), url
        assert refusal(url, allow_private=True) is None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    first = read_dataset(real_subset).posters.iloc[0]
    with open(tmp_path / "urls.csv", "w", newline="") as f:
        csv.writer(f).writerows([["imdb_id", "title", "year", "genres", "url"],
                                 ["local", "Local", "1999", "Drama", f"{base}/local.jpg"],
                                 ["redirect", "Redirect", "1999", "Drama", f"{base}/redirect.jpg"],
                                 [first.imdb_id, first.title, first.year, "|".join(first.genres), ""]])
    (tmp_path / "images").mkdir()
    shutil.copyfile(first.path, tmp_path / "images" / f"{first.imdb_id}.jpg")
    columns = Columns(id="imdb_id", title="title", genres="genres", year="year", url="url")
    try:
        _Redirect.hits = []
        report = import_dataset(tmp_path / "urls.csv", tmp_path / "images", tmp_path / "out", columns,
                                download=True, progress=False)
        reasons = {s.imdb_id: s.reason for s in report.skipped}
        assert not _Redirect.hits and report.kept == 1  # refused before any connection
        assert "127.0.0.1" in reasons["local"] and "--allow-private-urls" in reasons["redirect"]
        report = import_dataset(tmp_path / "urls.csv", tmp_path / "images", tmp_path / "out2", columns,
                                download=True, progress=False, allow_private=True)
        reasons = {s.imdb_id: s.reason for s in report.skipped}
        assert "not an http(s) URL" in reasons["redirect"] and "a redirect from" in reasons["redirect"]
    finally:
        server.shutdown()


# ---- kill anywhere, resume anywhere ----

@pytest.mark.slow
def test_kill_fuzz_three_kills_resume_cleanly_to_the_uninterrupted_result(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "kill_fuzz.py"), "--trainer", "gan", "--kills",
                             "3", "--quick", "--json", "--work", str(tmp_path), "--seed", "1"],
                            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    tally = json.loads(result.stdout.strip().splitlines()[-1])[0]
    # After each kill the run is resumed, or started again when the kill came before it wrote its folder.
    assert tally["kills"] == tally["resumes"] + tally["restarts"] == 3, tally
    assert tally["clean_resumes"] == tally["resumes"], tally
    assert tally["equal_finals"] == tally["runs_finished"] >= 1 and tally["checkpoints_unreadable"] == 0, tally
    assert not tally["failures"] and not tally["differences"], tally


def test_a_classifiers_damaged_weights_fall_back_to_its_state(tmp_path, caplog):
    """The classifier keeps its last weights in state.pt as "model": they stand in for both damaged files."""
    from lab.checkpoint import STATE_FILE, save_state
    from lab.classifier.model import GenreClassifier
    torch.manual_seed(0)
    model = GenreClassifier("cnn4", 4, 3)
    folder = tmp_path / "checkpoints"
    save_state({"model": model.state_dict(), "step": 7}, folder / STATE_FILE)
    (folder / "last.safetensors").write_bytes(b"torn")
    other = GenreClassifier("cnn4", 4, 3)
    assert load_weights(other, folder / "last.safetensors") == {"step": "7"}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
    assert "using" in caplog.text and STATE_FILE in caplog.text
