"""Every trainer, sampler and scorer on a GPU, a few steps each; skipped where there is none.

On a GPU every tensor a loop makes has to live on the GPU: these catch the ones left on the CPU.
"""

import json

import pytest
import torch

from conftest import SHARED, lab_ok
from lab.data.synthetic import make_synthetic_posters
from lab.training import WeightAverage

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


@pytest.fixture(autouse=True)
def _torch_home(monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(SHARED / "torch-home"))


@pytest.fixture(scope="module")
def posters(tmp_path_factory):
    return make_synthetic_posters(tmp_path_factory.mktemp("gpu") / "posters", 240, seed=4, size=(64, 96))


def test_weight_average_lives_where_its_model_is():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    average = WeightAverage(model, average_buffers=True)
    model.cuda()
    average.update(0.9)
    assert all(t.is_cuda for t in average.state_dict().values())


def test_classifier_trains_evaluates_and_predicts_on_the_gpu(posters, tmp_path):
    # The full recipe's kind of model: MobileNetV2 with tapped blocks and a weight average.
    (tmp_path / "r.toml").write_text('size = "64x96"\nschedule = [[1, 0.0], [1, 0.6]]\ntaps = [6, 13, 17]\n'
                                     'ema = 0.9\nbatch_size = 32\n')
    run = tmp_path / "clf"
    lab_ok("train-classifier", "--data", posters, "--recipe", tmp_path / "r.toml", "--out", run)
    lab_ok("evaluate", run)
    evaluation = json.loads((run / "evaluation-test.json").read_text())
    assert evaluation["macro_map"] > evaluation["baselines"]["prior"]["macro_map"]
    lab_ok("predict", run, next((posters / "images").iterdir()))


def test_gan_trains_samples_and_is_scored_on_the_gpu(posters, tmp_path):
    (tmp_path / "clf.toml").write_text('size = "64x96"\nschedule = [[1, 0.0]]\nbaselines = false\n')
    lab_ok("train-classifier", "--data", posters, "--recipe", tmp_path / "clf.toml", "--out", tmp_path / "clf")
    lab_ok("train-gan", "--data", posters, "--size", "64x96", "--channels", "8", "--steps", "20", "--out", tmp_path / "gan")
    lab_ok("sample", tmp_path / "gan", "--genre", "Drama", "--decade", "1990", "-n", "8", "--out", tmp_path / "s")
    lab_ok("score-samples", tmp_path / "s", "--classifier", tmp_path / "clf")
    assert (tmp_path / "s" / "scores.json").is_file()


def test_demo_runs_on_the_gpu(tmp_path):
    data = make_synthetic_posters(tmp_path / "posters", 240, seed=6, size=(32, 48))
    (tmp_path / "clf.toml").write_text('size = "32x48"\nschedule = [[1, 0.0]]\nbaselines = false\n')
    (tmp_path / "gan.toml").write_text('size = "32x48"\nchannels = 8\nz_dim = 16\nsteps = 10\nbatch_size = 16\n')
    lab_ok("demo", "--data", data, "--out", tmp_path / "demo", "-n", "4",
         "--classifier-recipe", tmp_path / "clf.toml", "--generator-recipe", tmp_path / "gan.toml")
    assert (tmp_path / "demo" / "headline.json").is_file()


def test_diffusion_trains_samples_and_is_scored_on_the_gpu(posters, tmp_path):
    # bf16 autocast, the EMA, guidance's doubled batch and the sampler's schedule all run on cuda.
    (tmp_path / "clf.toml").write_text('size = "64x96"\nschedule = [[1, 0.0]]\nbaselines = false\n')
    lab_ok("train-classifier", "--data", posters, "--recipe", tmp_path / "clf.toml", "--out", tmp_path / "clf")
    (tmp_path / "d.toml").write_text('size = "64x96"\nchannels = 8\nmultipliers = [1, 2, 2]\nlayers_per_block = 1\n'
                                     'batch_size = 16\nsteps = 20\ncheckpoint_every = 10\ngrid_every = 10\n')
    run = tmp_path / "diffusion"
    lab_ok("train-diffusion", "--data", posters, "--recipe", tmp_path / "d.toml", "--out", run)
    assert json.loads((run / "diffusion.json").read_text())["steps"] == 20
    for sampler in ("ddim", "dpm++"):
        lab_ok("sample", run, "--genre", "Drama", "--decade", "1990", "-n", "8", "--steps", "5", "--guidance", "3",
             "--sampler", sampler, "--out", tmp_path / sampler)
    lab_ok("score-samples", tmp_path / "dpm++", "--classifier", tmp_path / "clf")
    assert (tmp_path / "dpm++" / "scores.json").is_file()
