import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import lab_ok, run_cli, start_and_kill
from lab.checkpoint import load_state
from lab.data.poster_dataset import open_posters
from lab.data.synthetic import make_synthetic_posters
from lab.diffusion.model import PosterDenoiser
from lab.generation.sampling import sample, sample_to_folder
from lab.generation.steering import Steerer
from lab.diffusion.options import DiffusionOptions
from lab.diffusion.train import train_diffusion
from lab.errors import LabError
from lab.gan.options import GanOptions
from lab.gan.train import train_gan
from lab.report import write_report
from lab.runs import Run

# Small enough for seconds on one core, big enough to learn the synthetic posters' colours in 100 steps.
LEARNING = dict(size="32x48", channels=16, multipliers=[1, 2, 2], layers_per_block=1, batch_size=16, steps=100,
                lr=2e-3, warmup_steps=20, ema_decay=0.95, grid_every=50, grid_steps=4, checkpoint_every=50,
                log_every=10)
TINY = dict(LEARNING, channels=8, multipliers=[1, 2], batch_size=8, steps=20, grid_every=10, checkpoint_every=4,
            log_every=4)


@pytest.fixture(scope="module")
def posters(tmp_path_factory):
    return make_synthetic_posters(tmp_path_factory.mktemp("diffusion") / "posters", 240, seed=3, size=(32, 48))


def _train(posters, out, **options):
    opts = DiffusionOptions(**{"data": str(posters), **LEARNING, **options})
    run = Run.create(out, "", vars(opts).copy())
    return train_diffusion(opts, run, progress=False), run


@pytest.fixture(scope="module")
def trained(posters, tmp_path_factory):
    return _train(posters, tmp_path_factory.mktemp("runs") / "diffusion")[1].path


@pytest.mark.slow
def test_the_denoiser_keeps_the_poster_size_and_hears_the_condition_unless_it_is_dropped():
    torch.manual_seed(0)
    model = PosterDenoiser((64, 96), 5, 3, channels=8, multipliers=(1, 2, 2, 2), layers_per_block=1)
    x, t = torch.randn(1, 3, 96, 64).repeat(2, 1, 1, 1), torch.tensor([500, 500])
    y, d = torch.eye(5)[[0, 1]], torch.tensor([0, 2])
    with torch.no_grad():
        # Random weights are small at first: make the condition's path loud enough to see.
        model.condition.mlp[1].weight.mul_(50)
        heard = model(x, t, y, d, torch.tensor([True, True]))
        dropped = model(x, t, y, d, torch.tensor([False, False]))
    assert heard.shape == (2, 3, 96, 64)
    assert not torch.allclose(heard[0], heard[1], atol=1e-4)  # same noisy poster, other condition
    assert torch.allclose(dropped[0], dropped[1], atol=1e-5)  # no condition: nothing tells them apart
    with pytest.raises(ValueError, match="2:3"):
        PosterDenoiser((64, 64), 5, 3)
    with pytest.raises(ValueError, match="divisible by 8"):
        PosterDenoiser((36, 54), 5, 3, multipliers=(1, 2, 2, 2))


def test_training_writes_a_complete_run_and_its_loss_falls(trained):
    info = json.loads((trained / "diffusion.json").read_text())
    assert info["steps"] == 100 and info["size"] == [32, 48]
    assert info["model"]["schedule"]["prediction_type"] == "v_prediction"
    assert set(info["genres_seen"]) == {"Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi"}
    losses = [r["loss"] for r in Run(trained).metrics()]
    assert [r["step"] for r in Run(trained).metrics()] == list(range(10, 101, 10))
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < 0.7 * losses[0], losses
    assert sorted(p.name for p in (trained / "grids").iterdir()) == ["step-000050.png", "step-000100.png"]
    grid = Image.open(trained / "grids" / "step-000100.png")
    assert grid.size == (8 * 32 + 7 * 2, len(info["grid"]) * 48 + (len(info["grid"]) - 1) * 2)
    split = json.loads((trained / "split.json").read_text())
    assert set(split["test"]).isdisjoint(split["train"])
    weights = load_file(trained / "checkpoints" / "denoiser_ema.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())


@pytest.mark.slow
def test_samples_take_the_colour_of_the_genre_they_are_asked_for(posters, trained, tmp_path):
    """Synthetic genres differ by hue: samples asked for a genre must be nearer its real posters' colour."""
    table = open_posters(posters, size=(32, 48), progress=False)
    genres = ["Action", "Drama", "Sci-Fi"]  # hues 0, 1/3 and 2/3 of the circle apart
    real = {g: table.images[np.flatnonzero(table.table.posters["genres"].map(lambda gs: gs[0] == g))]
            .reshape(-1, 3).mean(0) for g in genres}
    _, summary = sample_to_folder(trained, genres, ["1990"], 16, 0, tmp_path / "s", steps=10, guidance=3)
    for g in genres:
        made = np.stack([np.asarray(Image.open(tmp_path / "s" / r["file"])) for r in summary["images"]
                         if r["genres"] == [g]]).reshape(-1, 3).mean(0)
        nearest = min(genres, key=lambda k: np.linalg.norm(made - real[k]))
        assert nearest == g, (g, made, real)


@pytest.mark.slow
def test_sampling_is_deterministic_and_bad_settings_are_one_line_errors(trained, tmp_path, capsys):
    args = (["horror", "Comedy+Drama"], ["1950"], 3)
    out1, summary = sample_to_folder(trained, *args, seed=5, out=tmp_path / "a", steps=4, sampler="ddim")
    out2, _ = sample_to_folder(trained, *args, seed=5, out=tmp_path / "b", steps=4, sampler="ddim")
    out3, _ = sample_to_folder(trained, *args, seed=6, out=tmp_path / "c", steps=4, sampler="ddim")
    files = sorted(p.name for p in out1.glob("*.png"))
    assert len(files) == 2 * 3 + 1 and "grid.png" in files
    assert all((out1 / f).read_bytes() == (out2 / f).read_bytes() for f in files)
    assert (out1 / "horror-1950s-0000.png").read_bytes() != (out3 / "horror-1950s-0000.png").read_bytes()
    assert summary["images"][0] == {"file": "horror-1950s-0000.png", "genres": ["Horror"], "decade": 1950, "seed": 5,
                                    "index": 0, "run": str(trained.resolve()), "step": 100}
    assert (summary["sampler"], summary["steps"], summary["conditional"]) == ("ddim", 4, True)
    # Another condition from the same noise is another poster.
    assert not np.array_equal(np.asarray(Image.open(out1 / "horror-1950s-0000.png")),
                              np.asarray(Image.open(out1 / "comedy-drama-1950s-0000.png")))
    for flags, message in ((["--guidance", "-1"], "--guidance must be between 0"),
                           (["--guidance", "nan"], "--guidance must be between 0"),
                           (["--steps", "0"], "--steps must be between 1 and 1000"),
                           (["--steps", "5000"], "--steps must be between 1 and 1000"),
                           (["--sampler", "euler"], "--sampler must be one of ddim, dpm++")):
        code, out, err = run_cli(capsys, "sample", str(trained), "--genre", "Horror", "--decade", "1950",
                              "--out", str(tmp_path / "bad"), *flags)
        assert code == 2 and message in err and err.startswith("error: ") and err.count("\n") == 1, (flags, err)
        assert "Traceback" not in out + err
    assert not (tmp_path / "bad").exists()
    with pytest.raises(LabError, match="never trained on the 1980s"):
        sample_to_folder(trained, ["Horror"], ["1980"], 2, 0, tmp_path / "e")


@pytest.mark.slow
def test_classifier_guidance_carries_the_genre_where_the_model_ignores_it(posters, trained, tmp_path, capsys):
    """Sampled without the condition (--guidance 0), the model makes posters of any genre; a classifier that
    guides it makes each nearer its asked genre's colour, by that classifier's reading and by the pixels alone."""
    steer = tmp_path / "steer"
    lab_ok("train-classifier", "--data", posters, "--out", steer, "--size", "32x48", "--schedule", "12:1",
           "--backbone", "cnn4", "--no-pretrained", "--lr", "3e-3", "--backbone-lr", "3e-3", "--batch-size", "32",
           "--no-baselines")
    table = open_posters(posters, size=(32, 48), progress=False)
    genres = ["Action", "Drama", "Sci-Fi"]  # hues 0, 1/3 and 2/3 of the circle apart
    real = {g: table.images[np.flatnonzero(table.table.posters["genres"].map(lambda gs: gs[0] == g))]
            .reshape(-1, 3).mean(0) for g in genres}
    args = dict(genres=genres, decades=["1990"], n=8, seed=0, steps=8, guidance=0.0)
    plain = sample(trained, **args)
    guided = sample(trained, steer=steer, steer_scale=1.0, **args)
    again, folder = sample(trained, steer=steer, steer_scale=1.0, **args), tmp_path / "guided"
    assert np.array_equal(guided.images, again.images)  # the augmentation's draws are seeded too
    steerer = Steerer(steer, scale=1.0)
    gain = steerer.log_likelihood(guided.images, guided.conditions) - steerer.log_likelihood(plain.images,
                                                                                               plain.conditions)
    assert gain.mean() > 1.0, gain

    def colour_distance(samples):
        asked = np.array([real[c.genres[0]] for c in samples.conditions])
        return np.linalg.norm(samples.images.reshape(len(asked), -1, 3).mean(1) - asked, axis=1).mean()

    assert colour_distance(guided) < 0.7 * colour_distance(plain), (colour_distance(guided), colour_distance(plain))
    code, out, err = run_cli(capsys, "sample", trained, "--genre", "Action", "--decade", "1990", "-n", "2", "--steps",
                             "4", "--steer", steer, "--steer-scale", "0.5", "--out", folder)
    assert code == 0, err
    summary = json.loads((folder / "samples.json").read_text())
    assert summary["steered_by"] == {"classifier": str(steer.resolve()), "lever": "steer_scale", "steer_scale": 0.5}
    assert summary["same_noise"]  # guidance keeps each poster's noise: the condition effects still read


@pytest.mark.slow
def test_genre_guidance_of_its_own_moves_the_genre_and_leaves_the_decade(posters, trained, tmp_path, capsys):
    """A model trained to do without its genres alone: the genres' guidance at 0 asks for the decade alone, so
    the rows of one decade come out alike whatever genre they ask; at 4 they differ. Equal scales are
    classifier-free guidance as it was."""
    run = _train(posters, tmp_path / "genre-free", genre_dropout=0.3)[1].path
    info = json.loads((run / "diffusion.json").read_text())
    assert info["model"]["genre_free"] and "genre_free" not in json.loads((trained / "diffusion.json").read_text())["model"]
    args = dict(genres=["Action", "Drama", "Sci-Fi"], decades=["1990"], n=6, seed=0, steps=8)
    same_scales = sample(run, guidance=3.0, genre_guidance=3.0, **args).images.astype(int)
    assert np.abs(same_scales - sample(run, guidance=3.0, **args).images).max() <= 1

    def genre_spread(samples):  # each noise's posters across the genres, against its mean
        images = samples.images.reshape(3, 6, -1).astype(float)
        return np.abs(images - images.mean(0)).mean()

    decade_alone = genre_spread(sample(run, guidance=3.0, genre_guidance=0.0, **args))
    assert decade_alone < 0.3 * genre_spread(sample(run, guidance=3.0, genre_guidance=4.0, **args))
    code, _, err = run_cli(capsys, "sample", str(trained), "--genre", "Horror", "--decade", "1950",
                           "--genre-guidance", "2", "--out", str(tmp_path / "bad"))
    assert code == 2 and "--genre-guidance needs a diffusion run trained with genre_dropout" in err
    assert err.count("\n") == 1 and not (tmp_path / "bad").exists()


def test_sample_tells_the_generators_apart_by_their_run_files(posters, tmp_path, capsys):
    opts = GanOptions(data=str(posters), size="32x48", channels=8, z_dim=16, batch_size=8, steps=1)
    train_gan(opts, Run.create(tmp_path / "gan", "", vars(opts).copy()), progress=False)
    code, out, _ = run_cli(capsys, "sample", str(tmp_path / "gan"), "--genre", "Horror", "--decade", "1950", "-n", "2")
    assert code == 0 and "2 posters from step 1" in out
    code, _, err = run_cli(capsys, "sample", str(tmp_path / "gan"), "--genre", "Horror", "--decade", "1950",
                        "--guidance", "3")
    assert code == 2 and "--guidance: for diffusion runs only" in err and err.count("\n") == 1


def test_a_diffusion_run_has_a_report_page_with_its_grids_and_loss_curve(trained, tmp_path):
    html = write_report(trained, tmp_path / "report.html", progress=False).read_text()
    assert "Conditional poster diffusion model" in html
    assert all(f'id="diffusion-{s}"' in html for s in ("grids", "losses", "scores"))
    assert html.count('alt="step-000') == 2  # both training grids
    assert f"lab sample {trained}" in html  # what to do to see scores


@pytest.mark.slow
def test_init_from_fine_tunes_a_filtered_subset_and_refuses_another_model(posters, trained, tmp_path):
    info, run = _train(posters, tmp_path / "horror", steps=2, genre=["Horror"], init_from=str(trained))
    parent = json.loads((trained / "diffusion.json").read_text())
    assert info["n_train"] < parent["n_train"] / 3 and info["genres_seen"] == parent["genres_seen"]
    assert json.loads((run.path / "split.json").read_text()) == json.loads((trained / "split.json").read_text())
    with pytest.raises(LabError, match="model"):
        _train(posters, tmp_path / "other", steps=1, channels=8, init_from=str(trained))
    # With a learning rate of 1e-30 a step moves no weight measurably, so the child starts as the parent.
    _, child = _train(posters, tmp_path / "child", steps=1, lr=1e-30, init_from=str(trained))
    parent, weights = (load_file(r / "checkpoints" / "denoiser.safetensors") for r in (trained, child.path))
    assert all(torch.allclose(parent[k], weights[k], rtol=0, atol=1e-12) for k in parent)


@pytest.mark.slow
def test_nan_losses_stop_the_run_and_keep_the_last_good_checkpoint(posters, tmp_path):
    _train(posters, tmp_path / "nan", **{**TINY, "steps": 4})
    # Continued with a learning rate far too high, the weights blow up and the loss is no longer finite.
    opts = DiffusionOptions(**{"data": str(posters), **TINY, "steps": 8, "lr": 1e38, "grad_clip": 0.0})
    with pytest.raises(LabError, match="diverged at step"):
        train_diffusion(opts, Run.create(tmp_path / "nan", "", {}, resume=True), resume=True, progress=False)
    saved = load_state(tmp_path / "nan" / "checkpoints" / "state.pt")
    assert saved["step"] == 4
    assert all(torch.isfinite(v).all() for v in saved["denoiser_ema"].values() if v.is_floating_point())


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_loss_curve(posters, tmp_path):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in TINY.items()))
    start = [sys.executable, "-m", "lab.cli", "train-diffusion", "--data", str(posters), "--recipe", str(recipe)]
    subprocess.run(start + ["--out", str(tmp_path / "whole")], check=True, capture_output=True)
    state = tmp_path / "killed" / "checkpoints" / "state.pt"
    start_and_kill(start + ["--out", str(tmp_path / "killed")], state)
    assert load_state(state)["step"] < TINY["steps"], "the kill should land mid-run"
    subprocess.run([*start[:4], "--out", str(tmp_path / "killed"), "--resume"], check=True, capture_output=True)
    whole, killed = Run(tmp_path / "whole").metrics(), Run(tmp_path / "killed").metrics()
    assert [r["step"] for r in killed] == [r["step"] for r in whole] == list(range(4, 21, 4))
    assert [r["loss"] for r in killed] == [r["loss"] for r in whole]
    a = load_file(tmp_path / "whole" / "checkpoints" / "denoiser_ema.safetensors")
    b = load_file(tmp_path / "killed" / "checkpoints" / "denoiser_ema.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.parametrize("verb,options", [
    ("train-diffusion", ["--data", "--genre", "--decade", "--year-min", "--year-max", "--recipe", "--out", "--seed",
                         "--resume", "--init-from", "--size", "--steps", "--batch-size", "--lr", "--channels",
                         "--prediction", "--condition-dropout"]),
    ("sample", ["--genre", "--decade", "-n", "--seed", "--out", "--steps", "--guidance", "--sampler"]),
    ("demo", ["--generator", "--generator-recipe", "--resume"]),
])
def test_help_explains_every_option(capsys, verb, options):
    code, out, _ = run_cli(capsys, verb, "--help")
    assert code == 0
    lines = [line.strip("│ ") for line in out.splitlines()]
    for option in options:
        line = next((x for x in lines if x.split(" ")[0] == option or x.startswith(option + " ")), None)
        assert line is not None, (verb, option)
        assert len(line.split()) > 2, (verb, line)  # the option, its type, and words explaining it
