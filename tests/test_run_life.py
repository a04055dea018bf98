"""The life of a run as a newcomer meets it: no folder for a run that never started, every run's status in
`lab runs`, the lock let go when training returns, tensorboard through accelerate, streamed sampling that
refuses what the disk cannot hold, and the small verbs (--version, recipes, predict)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli, start_and_kill
import lab
from lab.catalog import list_runs
from lab.errors import LabError
from lab.launch import train
from lab.runs import Run

TINY_GAN = ["--set", 'size="32x48"', "--set", "channels=8", "--set", "z_dim=16", "--set", "batch_size=8",
            "--set", "log_every=1", "--set", "checkpoint_every=2", "--set", "grid_every=2"]


@pytest.fixture(scope="module")
def tiny_gan(synthetic, tmp_path_factory):
    root = tmp_path_factory.mktemp("life")
    run, _ = train("gan", flags={"data": str(synthetic), "size": "32x48", "channels": 8, "z_dim": 16, "batch_size": 8,
                                 "steps": 4, "checkpoint_every": 2, "grid_every": 2}, out=root / "gan", progress=False)
    return run.path


@pytest.mark.parametrize("args,env,message", [
    (["train-classifier", "--data", "{data}"], {"TORCH_HOME": "{tmp}/empty-torch-home"},
     "LAB_ALLOW_DOWNLOAD=1"),
    (["train-classifier", "--data", "{data}", "--backbone", "resnet1000"], {}, "unknown backbone 'resnet1000'"),
    (["train-gan", "--data", "{tmp}/no-such-data"], {}, "no dataset at"),
    (["train-gan", "--data", "{data}", "--init-from", "{tmp}/no-such-run"], {}, "is not a run folder"),
    (["train-diffusion", "--data", "{data}", "--size", "30x45"], {}, "diffusion size must be 2:3"),
    (["demo", "--data", "{data}", "--generator", "vae"], {}, "--generator must be one of gan, diffusion"),
])
def test_a_run_that_fails_before_it_starts_leaves_no_folder(capsys, synthetic, tmp_path, monkeypatch, args, env,
                                                           message):
    monkeypatch.chdir(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value.format(tmp=tmp_path))
    args = [a.format(data=synthetic, tmp=tmp_path) for a in args]
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()


def test_a_run_whose_images_all_fail_to_decode_leaves_no_folder(capsys, tmp_path):
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "images" / "a.jpg").write_bytes(b"")
    (tmp_path / "data" / "metadata.csv").write_text("imdb_id,title,year,genres,image\na,A,1990,Drama,images/a.jpg\n")
    code, _, err = run_cli(capsys, "train-gan", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"))
    assert code == 2 and "readable image" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_lab_runs_tells_finished_failed_interrupted_and_running_runs_apart(capsys, synthetic, tiny_gan, tmp_path):
    root = tiny_gan.parent
    # Failed after it started: D "wins" at step 3, after steps 1 and 2 were logged and checkpointed.
    code, _, err = run_cli(capsys, "train", "gan", "--data", str(synthetic), *TINY_GAN, "--set", "steps=10",
                           "--set", "d_win_loss=100.0", "--set", "d_win_steps=3", "--out", str(root / "failed"))
    assert code == 2 and "collapsed at step 3" in err
    # Interrupted: killed as soon as its first checkpoint is on disk.
    args = [sys.executable, "-m", "lab.cli", "train", "gan", "--data", str(synthetic), *TINY_GAN, "--set",
            "steps=2000", "--out", str(root / "killed")]
    start_and_kill(args, root / "killed" / "checkpoints" / "state.pt")
    # Running: another process holds the run's lock.
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from lab.runs import Run; "
                               "Run.create(sys.argv[1], '', {}, resume=True); print('held', flush=True); "
                               "time.sleep(60)", str(root / "killed")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, out, _ = run_cli(capsys, "runs", str(root))
        statuses = {r.path.name: r for r in list_runs(root)}
    finally:
        holder.kill()
        holder.wait()
    assert code == 0
    assert statuses["gan"].status == "finished" and statuses["gan"].progress == "step 4/4"
    assert statuses["failed"].status == "failed" and "collapsed at step 3" in statuses["failed"].reason
    assert statuses["killed"].status == "running"
    assert "collapsed at step 3" in out and "d_loss" in out
    assert {r.path.name: r.status for r in list_runs(root)}["killed"] == "interrupted"
    Run.create(root / "failed", "", {}, resume=True).release()  # resuming clears the failure
    assert {r.path.name: r.status for r in list_runs(root)}["failed"] == "interrupted"


@pytest.mark.slow
def test_training_returns_with_its_lock_released(synthetic, tiny_gan):
    # The same process may resume it (finished: nothing to do), another may open and train from it.
    result = subprocess.run([sys.executable, "-m", "lab.cli", "train-gan", "--out", str(tiny_gan), "--resume"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "finished training" in result.stderr
    assert not Run(tiny_gan).is_locked_elsewhere()


def test_resume_refuses_options_it_would_ignore(capsys, tiny_gan):
    code, _, err = run_cli(capsys, "train-gan", "--out", str(tiny_gan), "--resume", "--steps", "9", "--lr-g", "1e-3")
    assert code == 2 and "leave out --steps, --lr-g" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(LabError, match="leave out --steps"):  # the Python API alike
        lab.train_gan(out=tiny_gan, resume=True, steps=9)


def test_metrics_also_go_to_tensorboard_through_accelerate(capsys, synthetic, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    code, _, err = run_cli(capsys, "train", "gan", "--data", str(synthetic), *TINY_GAN, "--set", "steps=4",
                           "--log-with", "tensorboard", "--out", str(tmp_path / "tb"))
    assert code == 0, err
    events = EventAccumulator(str(next((tmp_path / "tb" / "tensorboard").rglob("events.out.tfevents.*")).parent))
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("d_loss")]
    records = [json.loads(line) for line in (tmp_path / "tb" / "metrics.jsonl").read_text().splitlines()]
    assert [s for s, _ in logged] == [r["step"] for r in records]
    assert np.allclose([v for _, v in logged], [r["d_loss"] for r in records], atol=1e-4)


def test_sampling_streams_and_refuses_what_the_disk_cannot_hold(capsys, tiny_gan, tmp_path):
    code, out, err = run_cli(capsys, "sample", str(tiny_gan), "--genre", "Horror", "--decade", "1990", "-n",
                             str(10 ** 8), "--out", str(tmp_path / "huge"))
    assert code == 2 and "need up to" in err and "GB free" in err and err.count("\n") == 1, err
    assert not (tmp_path / "huge").exists()
    code, out, err = run_cli(capsys, "sample", str(tiny_gan), "--genre", "Horror", "--decade", "1990", "-n", "150",
                             "--out", str(tmp_path / "s"))
    assert code == 0 and "150 posters" in out
    summary = json.loads((tmp_path / "s" / "samples.json").read_text())
    assert len(summary["images"]) == 150 and summary["n"] == 150
    grid = Image.open(tmp_path / "s" / "grid.png")
    assert grid.height < 5 * 48 + 10  # four rows of the condition at most, not all 150 posters


def test_sampling_like_the_training_posters_draws_their_conditions(capsys, tiny_gan, tmp_path):
    code, out, err = run_cli(capsys, "sample", str(tiny_gan), "--like-training", "-n", "40", "--out",
                             str(tmp_path / "like"))
    assert code == 0, err
    summary = json.loads((tmp_path / "like" / "samples.json").read_text())
    assert len(summary["images"]) == 40 and summary["like_training"] and not summary["same_noise"]
    assert sum(c["n"] for c in summary["conditions"]) == 40 and len(summary["conditions"]) > 3
    code, _, err = run_cli(capsys, "sample", str(tiny_gan), "--like-training", "--genre", "Horror", "-n", "4")
    assert code == 2 and "leave out --genre" in err


def test_predict_names_a_missing_file_and_fails_when_nothing_was_read(capsys, tmp_path):
    (tmp_path / "clf.toml").write_text('size = "32x48"\nbackbone = "cnn4"\nweights = "none"\nschedule = [[1, 1.0]]\n'
                                       "batch_size = 32\nrating_weight = 0.0\nbaselines = false\n")
    from lab.data.synthetic import make_synthetic_posters
    data = make_synthetic_posters(tmp_path / "posters", 60, seed=0)
    run, _ = train("classifier", recipe=tmp_path / "clf.toml", flags={"data": str(data)}, out=tmp_path / "clf",
                   progress=False)
    poster = next((data / "images").iterdir())
    code, out, err = run_cli(capsys, "predict", str(run.path), str(tmp_path / "nonexist.jpg"))
    assert code == 2 and "nonexist.jpg   cannot read: no such file" in out and err.count("\n") == 1
    code, out, err = run_cli(capsys, "predict", str(run.path), str(poster), str(tmp_path / "nonexist.jpg"))
    assert code == 0 and "no such file" in out and "%" in out


def test_version_recipes_and_the_report_help(capsys, tmp_path, monkeypatch):
    from lab import __version__
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.strip() == f"lab {__version__}"
    code, out, _ = run_cli(capsys, "recipes")
    assert code == 0 and "gan-quick" in out and "classifier-full" in out
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "recipes", "gan-quick")
    assert code == 0 and (tmp_path / "gan-quick.toml").read_text().startswith("#")
    code, _, err = run_cli(capsys, "recipes", "gan-quick")
    assert code == 2 and "exists" in err
    code, out, _ = run_cli(capsys, "report", "--help")
    assert code == 0 and all(kind in out for kind in ("classifier", "GAN", "diffusion", "upsampler", "demo"))


def test_a_device_that_is_not_there_is_a_one_line_error(capsys, tiny_gan):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = run_cli(capsys, "sample", str(tiny_gan), "--genre", "Horror", "--decade", "1990", "--device",
                           "cuda")
    assert code == 2 and "no CUDA device" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "sample", str(tiny_gan), "--device", "tpu")
    assert code == 2 and "--device must be one of auto, cpu, cuda, mps" in err
