import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import lab_ok, start_and_kill
from lab.checkpoint import load_state
from lab.data.poster_dataset import open_posters
from lab.data.synthetic import make_synthetic_posters
from lab.errors import LabError
from lab.gan.diffaugment import diff_augment
from lab.gan.model import Discriminator, Generator
from lab.generation.sampling import sample, sample_to_folder
from lab.generation.steering import Steerer
from lab.gan.networks import build_discriminators, build_generator
from lab.gan.options import GanOptions
from lab.gan.train import train_gan
from lab.generation.condition import parse_conditions
from lab.runs import Run

TINY = dict(size="32x48", channels=8, z_dim=16, batch_size=16, grid_every=5, checkpoint_every=5, log_every=5)


@pytest.fixture(scope="module")
def posters(tmp_path_factory):
    # Posters that show only their genres and decade: a GAN's conditioning is judged by their colours.
    return make_synthetic_posters(tmp_path_factory.mktemp("gan") / "posters", 240, seed=3, size=(32, 48),
                                  ratings=False)


def _train(posters, out, **options):
    opts = GanOptions(**{"data": str(posters), **TINY, **options})
    run = Run.create(out, "", vars(opts).copy())
    return train_gan(opts, run, progress=False), run


@pytest.fixture(scope="module")
def trained(posters, tmp_path_factory):
    info, run = _train(posters, tmp_path_factory.mktemp("runs") / "gan", steps=20)
    return run.path


def test_models_make_posters_of_the_asked_size_and_d_sees_the_condition():
    torch.manual_seed(0)
    g, d = Generator((64, 96), 5, 3, z_dim=16, channels=8), Discriminator((64, 96), 5, 3, channels=8)
    y = torch.eye(5)[[0, 1]]
    images = g(torch.randn(2, 16), y, torch.tensor([0, 2]))
    assert images.shape == (2, 3, 96, 64) and images.abs().max() <= 1
    same = images[:1].repeat(2, 1, 1, 1)
    scores, classes = d(same, y, torch.tensor([0, 2]))
    assert scores.shape == (2,) and scores[0] != scores[1]  # same image, other condition, other score
    assert classes.shape == (2, 5 + 3) and torch.allclose(classes[0], classes[1])  # it names what it sees
    uncond = Discriminator((64, 96), 5, 3, channels=8, conditional=False)
    scores, classes = uncond(same, y, torch.tensor([0, 2]))
    assert torch.allclose(*scores.split(1)) and classes is None
    with pytest.raises(ValueError, match="2:3"):
        Generator((64, 64), 5, 3)


def test_diffaugment_is_seeded_differentiable_and_changes_images():
    x = (torch.rand(4, 3, 48, 32) * 2 - 1).requires_grad_()
    a = diff_augment(x, "color,translation,cutout", torch.Generator().manual_seed(1))
    b = diff_augment(x, "color,translation,cutout", torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape and not torch.allclose(a, x)
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    cut = diff_augment(torch.ones(2, 3, 48, 32), "cutout", torch.Generator().manual_seed(0))
    hidden = (cut == 0).float().mean(dim=(1, 2, 3))  # a half-by-half square, possibly cut by the border
    assert ((hidden > 0) & (hidden <= 0.25)).all()
    assert torch.equal(diff_augment(x, "", torch.Generator()), x)


@pytest.mark.slow
def test_a_few_steps_on_synthetic_posters_write_a_complete_run(trained):
    info = json.loads((trained / "gan.json").read_text())
    assert info["steps"] == 20 and info["size"] == [32, 48]
    assert set(info["genres_seen"]) == {"Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi"}
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    assert all(np.isfinite([r["d_loss"], r["g_loss"], r["d_class"], r["g_class"], r["spread"]]).all()
               for r in records)
    assert sorted(p.name for p in (trained / "grids").iterdir()) == [f"step-{s:06d}.png" for s in (5, 10, 15, 20)]
    grid = Image.open(trained / "grids" / "step-000020.png")
    assert grid.size == (8 * 32 + 7 * 2, len(info["grid"]) * 48 + (len(info["grid"]) - 1) * 2)
    split = json.loads((trained / "split.json").read_text())
    assert set(split["test"]).isdisjoint(split["train"])
    assert info["n_train"] == 240 - len(split["test"]) - len(split["val"])
    weights = load_file(trained / "checkpoints" / "g_ema.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_sampling_is_deterministic_and_rejects_unknown_conditions(trained, tmp_path):
    out1, summary = sample_to_folder(trained, ["horror", "Comedy+Drama"], ["1950", "1990s"], 3, seed=5, out=tmp_path / "a")
    out2, _ = sample_to_folder(trained, ["horror", "Comedy+Drama"], ["1950", "1990s"], 3, seed=5, out=tmp_path / "b")
    out3, _ = sample_to_folder(trained, ["horror"], ["1950"], 3, seed=6, out=tmp_path / "c")
    files = sorted(p.name for p in out1.glob("*.png"))
    assert len(files) == 4 * 3 + 1 and "grid.png" in files
    assert all((out1 / f).read_bytes() == (out2 / f).read_bytes() for f in files)
    assert (out1 / "horror-1950s-0000.png").read_bytes() != (out3 / "horror-1950s-0000.png").read_bytes()
    first = summary["images"][0]
    assert first == {"file": "horror-1950s-0000.png", "genres": ["Horror"], "decade": 1950, "seed": 5, "index": 0,
                     "run": str(trained.resolve()), "step": 20}
    assert json.loads((out1 / "samples.json").read_text())["conditions"][3] == {"genres": ["Comedy", "Drama"],
                                                                               "decade": 1990, "n": 3}
    # Another condition with the same noise is another poster.
    assert not np.array_equal(np.asarray(Image.open(out1 / "horror-1950s-0000.png")),
                              np.asarray(Image.open(out1 / "horror-1990s-0000.png")))
    with pytest.raises(LabError, match="unknown genre 'Western'"):
        sample_to_folder(trained, ["Western"], ["1950"], 2, 0, tmp_path / "d")
    with pytest.raises(LabError, match="never trained on the 1980s"):
        sample_to_folder(trained, ["Horror"], ["1980"], 2, 0, tmp_path / "e")
    with pytest.raises(LabError, match="not empty"):
        sample_to_folder(trained, ["Horror"], ["1950"], 2, 0, out1)


def test_an_unconditional_run_samples_other_posters_for_each_condition(posters, tmp_path):
    _, run = _train(posters, tmp_path / "uncond", steps=5, conditional=False)
    _, summary = sample_to_folder(run.path, ["Horror", "Drama"], ["1950"], 2, seed=5, out=tmp_path / "u")
    first = [np.asarray(Image.open(tmp_path / "u" / f"{c}-1950s-0000.png")) for c in ("horror", "drama")]
    assert not np.array_equal(*first) and summary["conditional"] is False
    again, _ = sample_to_folder(run.path, ["Horror", "Drama"], ["1950"], 2, seed=5, out=tmp_path / "again")
    assert all((again / r["file"]).read_bytes() == (tmp_path / "u" / r["file"]).read_bytes()
               for r in summary["images"])


def test_condition_parsing():
    known = ["Action", "Comedy", "Horror"]
    conditions = parse_conditions(["comedy+HORROR", "action"], ["1980s", "2010"], known, [1980, 2010])
    assert [(c.genres, c.decade) for c in conditions] == [(("Comedy", "Horror"), 1980), (("Comedy", "Horror"), 2010),
                                                          (("Action",), 1980), (("Action",), 2010)]
    with pytest.raises(LabError, match="at least one --genre"):
        parse_conditions([], ["1980"], known, [1980])


def test_init_from_fine_tunes_a_filtered_subset_from_the_reference(posters, trained, tmp_path):
    info, run = _train(posters, tmp_path / "horror", steps=5, genre=["Horror"], decade=["1950"],
                       init_from=str(trained))
    parent = json.loads((trained / "gan.json").read_text())
    assert info["n_train"] < parent["n_train"] / 4 and info["init_from"] == str(trained)
    # It still knows what the reference run learned, and keeps the reference run's test posters unseen.
    assert info["genres_seen"] == parent["genres_seen"] and info["decades_seen"] == parent["decades_seen"]
    assert json.loads((run.path / "split.json").read_text()) == json.loads((trained / "split.json").read_text())
    with pytest.raises(LabError, match="size"):
        _train(posters, tmp_path / "other", steps=1, size="64x96", init_from=str(trained))


def test_init_from_starts_every_network_from_the_parent(posters, trained, tmp_path):
    # With learning rates of 0 a step changes no weight, so the child's checkpoints are the parent's.
    _, run = _train(posters, tmp_path / "child", steps=1, lr_g=0.0, lr_d=0.0, init_from=str(trained))
    # Batch-norm statistics and spectral norm's power iteration move in a training-mode forward;
    # the parameters may not.
    info = json.loads((trained / "gan.json").read_text())
    for name, net in (("g", build_generator(info)), *build_discriminators(info).items()):
        parent, child = (load_file(r / "checkpoints" / f"{name}.safetensors") for r in (trained, run.path))
        assert all(torch.equal(parent[k], child[k]) for k, _ in net.named_parameters())


def test_d_winning_for_a_long_stretch_stops_the_run_and_keeps_the_last_checkpoint(posters, tmp_path):
    # A threshold every hinge loss passes under makes "D wins" certain: the detector must fire on time.
    with pytest.raises(LabError, match="collapsed at step 8"):
        _train(posters, tmp_path / "win", steps=20, d_win_loss=100.0, d_win_steps=8)
    saved = load_state(tmp_path / "win" / "checkpoints" / "state.pt")
    assert saved["step"] == 5
    assert "collapsed" in (tmp_path / "win" / "log.txt").read_text()


@pytest.mark.slow
def test_nan_losses_stop_the_run_and_keep_the_last_good_checkpoint(posters, tmp_path):
    _train(posters, tmp_path / "nan", steps=5)
    # Continued with a learning rate far too high, the weights blow up to inf and the losses to nan.
    opts = GanOptions(**{"data": str(posters), **TINY, "steps": 10, "lr_g": 1e38, "lr_d": 1e38})
    with pytest.raises(LabError, match="diverged at step 6"):
        train_gan(opts, Run.create(tmp_path / "nan", "", {}, resume=True), resume=True, progress=False)
    saved = load_state(tmp_path / "nan" / "checkpoints" / "state.pt")
    assert saved["step"] == 5
    assert all(torch.isfinite(v).all() for v in saved["g_ema"].values() if v.is_floating_point())


def _cli(*args):
    return [sys.executable, "-m", "lab.cli", "train-gan", *args]


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_killed_run_resumes_to_the_same_weights(posters, tmp_path, precision):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in {**TINY, "steps": 24, "checkpoint_every": 4}
                              .items()))
    args = ["--data", str(posters), "--recipe", str(recipe), "--precision", precision]
    subprocess.run(_cli(*args, "--out", str(tmp_path / "whole")), check=True, capture_output=True)
    state = tmp_path / "killed" / "checkpoints" / "state.pt"
    start_and_kill(_cli(*args, "--out", str(tmp_path / "killed")), state)
    assert load_state(state)["step"] < 24, "the kill should land mid-run"
    subprocess.run(_cli("--out", str(tmp_path / "killed"), "--resume"), check=True, capture_output=True)
    whole = load_file(tmp_path / "whole" / "checkpoints" / "g_ema.safetensors")
    resumed = load_file(tmp_path / "killed" / "checkpoints" / "g_ema.safetensors")
    assert all(torch.allclose(whole[k], resumed[k], atol=1e-5) for k in whole)
    assert json.loads((tmp_path / "killed" / "options.json").read_text())["mixed_precision"] == precision


def genre_colours_come_out_right(posters, run_dir, out) -> None:
    """Synthetic genres differ by hue: samples asked for a genre must be nearer its real posters' colour."""
    table = open_posters(posters, size=(32, 48), progress=False)
    genres = ["Action", "Drama", "Sci-Fi"]  # hues 0, 1/3 and 2/3 of the circle apart
    real = {g: table.images[np.flatnonzero(table.table.posters["genres"].map(lambda gs: gs[0] == g))]
            .reshape(-1, 3).mean(0) for g in genres}
    _, summary = sample_to_folder(run_dir, genres, ["1990"], 32, 0, out)
    for g in genres:
        made = np.stack([np.asarray(Image.open(out / r["file"])) for r in summary["images"]
                         if r["genres"] == [g]]).reshape(-1, 3).mean(0)
        nearest = min(genres, key=lambda k: np.linalg.norm(made - real[k]))
        assert nearest == g, (g, made, real)


CONDITIONING = dict(steps=1600, channels=16, grid_every=1600, checkpoint_every=1600, log_every=100)


@pytest.mark.slow
def test_conditioning_is_learned_on_synthetic_posters(posters, tmp_path):
    _train(posters, tmp_path / "cond", **CONDITIONING)
    genre_colours_come_out_right(posters, tmp_path / "cond", tmp_path / "samples")


@pytest.mark.slow
def test_a_classifier_steers_g_and_a_judge_that_never_steered_reads_the_change(posters, tmp_path):
    """A frozen classifier's genre/decade loss on G's posters: after the same steps, G's posters are read as
    their condition better, by that classifier and by another one (another seed) that never steered."""
    readers = {}
    for name, seed in (("steer", "0"), ("judge", "1")):
        lab_ok("train-classifier", "--data", posters, "--out", tmp_path / name, "--size", "32x48", "--schedule",
               "12:1", "--backbone", "cnn4", "--no-pretrained", "--lr", "3e-3", "--backbone-lr", "3e-3",
               "--batch-size", "32", "--no-baselines", "--seed", seed)
        readers[name] = Steerer(tmp_path / name, 2)
    plain = _train(posters, tmp_path / "plain", steps=300, grid_every=300, checkpoint_every=300)[1].path
    steered = _train(posters, tmp_path / "steered", steps=300, grid_every=300, checkpoint_every=300,
                     steer=str(tmp_path / "steer"), steer_weight=3.0, steer_ramp=[50, 150])[1].path
    metrics = [(r["step"], r["g_steer"]) for r in Run(steered).metrics()]
    assert all(loss == 0 for step, loss in metrics if step <= 50) and all(loss > 0 for step, loss in metrics[-5:])
    made = {run: sample(run, ["Action", "Drama", "Sci-Fi"], ["1990"], 8) for run in (plain, steered)}
    for name, reader in readers.items():
        read = {run: reader.log_likelihood(s.images, s.conditions).mean() for run, s in made.items()}
        assert read[steered] > read[plain] + 0.5, (name, read)
    # Its samples say what steered them, so that the steerer is never taken for their judge.
    assert made[steered].summary["steered_by"] == {"classifier": str((tmp_path / "steer").resolve()),
                                                   "lever": "steer_weight", "steer_weight": 3.0}
    assert made[plain].summary["steered_by"] is None
    with pytest.raises(LabError, match="trained steered by"):
        sample(steered, ["Action"], ["1990"], 2, steer=tmp_path / "judge", select_of=2)
    lazy = GanOptions(data=str(posters), steer=str(tmp_path / "steer"), steer_weight=2.0, steer_every=4,
                      steer_ramp=[0, 16])
    assert [lazy.steer_strength(step) for step in (4, 5, 8, 16, 17, 20)] == [2.0, 0.0, 4.0, 8.0, 0.0, 8.0]
    with pytest.raises(LabError, match="steer .* and steer_weight"):
        GanOptions(data=str(posters), steer=str(tmp_path / "steer")).validate()
    with pytest.raises(LabError, match="conditional GAN"):
        GanOptions(data=str(posters), steer=str(tmp_path / "steer"), steer_weight=1.0, conditional=False).validate()
    with pytest.raises(LabError, match="not a classifier run"):
        GanOptions(data=str(posters), steer=str(plain), steer_weight=1.0).validate()
