"""Adding a generator is one package plus one registry line: a toy generator, defined here and registered,
trains, samples, is scored and is listed through the CLI like the lab's own."""

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import run_cli
from lab.generation.harness import Trainee, grid_conditions, train_generator
from lab.generation.run_info import load_for_sampling, read_info
from lab.generation.samples import to_uint8
from lab.generation.sampling import Renderer
from lab.kinds import KINDS, RunKind, get, register
from lab.options import GeneratorOptions
from lab.training import WeightAverage


@dataclass
class ToyOptions(GeneratorOptions):
    size: str = "32x48"
    steps: int = 30
    lr: float = 0.05


class ToyGenerator(nn.Module):
    """A poster's colour from its condition, a little texture from the noise."""

    def __init__(self, n_genres: int, n_decades: int, size):
        super().__init__()
        self.size = size
        self.genres, self.decades = nn.Linear(n_genres, 3), nn.Embedding(n_decades, 3)
        self.texture = nn.Linear(4, 3 * 8 * 12)

    def forward(self, z, genres, decades):
        colour = (self.genres(genres) + self.decades(decades))[:, :, None, None]
        texture = F.interpolate(self.texture(z).view(-1, 3, 12, 8), size=(self.size[1], self.size[0]))
        return torch.tanh(colour + 0.1 * texture)


def build(info):
    return ToyGenerator(len(info["genres"]), len(info["decades"]), info["size"])


class ToyTrainee(Trainee):
    def __init__(self, opts, info, posters, device):
        model = build(info)
        self.networks, self.averages = {"toy": model}, {"toy_ema": WeightAverage(model)}
        self.optimizers = {"opt": torch.optim.Adam(model.parameters(), lr=opts.lr)}
        self.grid_y, self.grid_d = grid_conditions(info, device)

    def prepare(self, accelerator):
        self.model, optimizer = accelerator.prepare(self.networks["toy"], self.optimizers["opt"])
        self.optimizers = {"opt": optimizer}

    def step(self, data, rng, step, accelerator):
        idx = torch.randint(len(data.images), (data.per_process,), generator=rng)
        z = torch.randn(data.per_process, 4, generator=rng)
        made = self.model(z, data.genres[idx], data.decades[idx])
        loss = F.mse_loss(made.mean((2, 3)), (data.images[idx].float() / 127.5 - 1).mean((2, 3)))
        self.optimizers["opt"].zero_grad()
        accelerator.backward(loss)
        self.optimizers["opt"].step()
        return loss.detach().view(1)

    def grid(self):
        return self.averages["toy_ema"].averaged(torch.zeros(len(self.grid_y), 4), self.grid_y, self.grid_d)


def train_toy(opts, run, *, resume=False, progress=True):
    return train_generator(opts, run, get("toy"), ToyTrainee, {}, resume=resume, progress=progress)


def load_toy_renderer(run_dir, **settings):
    info = read_info(run_dir, "toy.json", "toy")
    model, _, step = load_for_sampling(build(info), run_dir / "checkpoints" / "toy_ema.safetensors")
    return Renderer(info, (4,), lambda z, g, d: to_uint8(model(z, g, d)), True, {"checkpoint": "toy_ema", "step": step})


@pytest.fixture
def toy_kind():
    register(RunKind(name="toy", title="toy poster generator", run_file="toy.json", options="test_registry:ToyOptions",
                     trainer="test_registry:train_toy", sampler="test_registry:load_toy_renderer",
                     report="lab.report.generator_run:generator_page", weights=("toy", "toy_ema"), headline="loss"))
    yield
    del KINDS["toy"]


@pytest.mark.slow
def test_a_registered_toy_generator_trains_samples_scores_and_reports_through_the_cli(toy_kind, synthetic, tmp_path,
                                                                                        capsys):
    (tmp_path / "clf.toml").write_text('size = "32x48"\nbackbone = "cnn4"\nweights = "none"\nschedule = [[1, 1.0]]\n'
                                       "batch_size = 32\nrating_weight = 0.0\n")
    code, out, err = run_cli(capsys, "train", "classifier", "--data", str(synthetic), "--recipe",
                             str(tmp_path / "clf.toml"), "--out", str(tmp_path / "clf"))
    assert code == 0, err
    code, out, err = run_cli(capsys, "train", "toy", "--data", str(synthetic), "--set", "steps=20",
                             "--out", str(tmp_path / "toy"))
    assert code == 0 and "trained 20 steps" in out, err
    code, out, err = run_cli(capsys, "sample", str(tmp_path / "toy"), "--genre", "Horror", "--genre", "Comedy",
                             "--decade", "1990", "-n", "24", "--out", str(tmp_path / "s"))
    assert code == 0 and "48 posters from step 20" in out, err
    code, out, err = run_cli(capsys, "score-samples", str(tmp_path / "s"), "--classifier", str(tmp_path / "clf"),
                             "--extractor", "scratch_cnn")
    assert code == 0 and "overall" in out and "memorised" in out, err
    code, out, err = run_cli(capsys, "report", str(tmp_path / "toy"))
    assert code == 0 and (tmp_path / "toy" / "report.html").is_file(), err
    code, out, err = run_cli(capsys, "runs", str(tmp_path))
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip() and not line.startswith(" ")}
    assert "toy" in lines["toy"] and "finished" in lines["toy"] and "step 20/20" in lines["toy"], out
