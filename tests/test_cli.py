import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from lab.errors import LabError
from lab.runs import Run, next_run_dir

VERBS = ["train-classifier", "evaluate", "predict", "train-gan", "train-diffusion", "train-upsampler", "sample",
         "score-samples", "report", "demo", "runs", "recipes", "data"]


def test_help_lists_every_verb_and_each_verb_explains_its_options(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and all(v in out for v in VERBS)
    for verb in VERBS + ["data check", "data import", "data synthetic"]:
        code, out, _ = run_cli(capsys, *verb.split(), "--help")
        assert code == 0 and "Usage" in out, verb
        for line in out.splitlines():  # an option's own line, not a wrapped help line that starts with --
            if re.match(r"│\s{1,3}--", line) and "--help" not in line:
                assert len(line.split("  ")) > 1 and len(line.strip("│ ").split()) > 2, (verb, line)


def test_train_classifier_without_data_fails_before_making_a_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LAB_DATA", raising=False)
    code, _, err = run_cli(capsys, "train-classifier")
    assert code == 2 and "no dataset at data/posters" in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_data_check_prints_summary_and_problems(capsys, dirty_dataset):
    folder, good, expect_bad = dirty_dataset
    code, out, err = run_cli(capsys, "data", "check", str(folder))
    assert code == 0
    assert out.splitlines()[0].startswith(f"{folder}: {len(good)} posters")
    for imdb_id in expect_bad:
        assert f"(id {imdb_id})" in out
    code, out, _ = run_cli(capsys, "data", "check", str(folder), "--genre", "HORROR", "--decade", "1980s")
    assert code == 0 and "(filtered: horror-1980s)" in out and "decades: 1980s" in out


@pytest.mark.parametrize("args,message", [
    (["data", "check", "/no/such/folder"], "metadata.csv"),
    (["data", "check", "{real}", "--genre", "Horor"], "known genres"),
    (["data", "check", "{real}", "--decade", "1985"], "not a decade"),
    (["data", "check", "{real}", "--size", "64"], "WIDTHxHEIGHT"),
    (["data", "import", "--out", "{tmp}/o"], "exactly one of"),
    (["data", "import", "--out", "{tmp}/o", "--csv", "{tmp}/none.csv", "--images", "{tmp}"], "no CSV"),
])
def test_user_mistakes_are_one_line_errors(capsys, real_subset, tmp_path, args, message):
    args = [a.format(real=real_subset, tmp=tmp_path) for a in args]
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and message in err and err.startswith("error: ") and err.count("\n") == 1
    assert "Traceback" not in out + err


@pytest.mark.slow
def test_installed_console_script_runs(tmp_path):
    """The `lab` entry point that pip installed beside this interpreter, not `python -m lab.cli`."""
    script = shutil.which("lab", path=str(Path(sys.executable).parent))
    assert script, f"no `lab` console script beside {sys.executable}: install the project with pip"
    result = subprocess.run([script, "data", "synthetic", str(tmp_path / "s"), "-n", "12"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    result = subprocess.run([script, "data", "check", str(tmp_path / "s")], capture_output=True, text=True)
    assert result.returncode == 0 and "12 posters" in result.stdout
    result = subprocess.run([script, "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("lab ")


def test_data_import_cli_kaggle(capsys, dirty_dataset, tmp_path):
    folder, good, _ = dirty_dataset
    images = folder / "images"
    (tmp_path / "MovieGenre.csv").write_text(
        "imdbId,Imdb Link,Title,IMDB Score,Genre,Poster\n"
        + "".join(f"{p.stem},x,Film {p.stem} (1999),6,Drama|Horror,\n" for p in sorted(images.glob("*.*"))))
    code, out, _ = run_cli(capsys, "data", "import", "--kaggle-csv", str(tmp_path / "MovieGenre.csv"),
                           "--images", str(images), "--out", str(tmp_path / "out"))
    assert code == 0 and "rows skipped" in out
    for name in ("empty", "truncated", "notimage", "bomb"):
        assert f"(id {name})" in out
    assert f"imported {len(good)} posters" in out  # the grey, cmyk and alpha posters among them


def test_run_folders_are_numbered_and_never_clobbered(tmp_path):
    a = next_run_dir("gan-horror-1980s", tmp_path)
    b = next_run_dir("classifier", tmp_path)
    assert a.name == "00000-gan-horror-1980s" and b.name == "00001-classifier"
    run = Run.create(tmp_path / "mine", "x", {"lr": 0.1})
    run.log_metrics({"step": 1, "loss": 0.5})
    assert json.loads((run.path / "options.json").read_text()) == {"lr": 0.1}
    assert run.metrics()[0]["loss"] == 0.5
    with pytest.raises(LabError, match="not empty"):
        Run.create(tmp_path / "mine", "x", {})
    with pytest.raises(LabError, match="not a run folder"):
        Run.create(tmp_path / "other", "x", {}, resume=True)
    resumed = Run.create(tmp_path / "mine", "x", {"lr": 9}, resume=True)
    assert resumed.options == {"lr": 0.1} and resumed.metrics()[0]["step"] == 1
