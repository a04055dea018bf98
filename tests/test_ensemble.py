"""Test-time views, the asymmetric loss, and `lab ensemble`: classifier runs read together, every choice
made on validation, the ensemble read like any classifier run."""

import json

import pytest
import torch

from conftest import lab_ok, run_cli
from lab.classifier.model import asymmetric_loss
from lab.classifier.views import check_views, view_batches, view_indices
from lab.data.synthetic import make_synthetic_posters
from lab.errors import LabError


def test_views_are_the_poster_its_mirror_and_2_3_crops_of_it():
    images = torch.randint(0, 256, (2, 3, 96, 64), dtype=torch.uint8)
    assert len(view_batches(images, ())) == 1 and view_batches(images, ())[0] is images
    flipped = view_batches(images, ("flip",))
    assert len(flipped) == 2 and torch.equal(flipped[1], images.flip(3))
    both = view_batches(images, check_views(["flip", "crops"]))
    assert len(both) == 8 and all(v.shape == images.shape for v in both)
    top = both[1]  # the top crop, enlarged back: its first row comes from the poster's first row
    assert not torch.allclose(top.float(), images.float()) and top.min() >= 0 and top.max() <= 255
    # Each combination's views are the same tensors as those views among all of them (a fit reads each view once).
    for subset in ((), ("flip",), ("crops",), ("flip", "crops")):
        among = [both[i] for i in view_indices(subset, ("flip", "crops"))]
        assert len(among) == len(view_batches(images, subset))
        assert all(torch.equal(a, b) for a, b in zip(among, view_batches(images, subset)))
    with pytest.raises(LabError, match="unknown test-time view 'rotate'"):
        check_views(["rotate"])


def test_asymmetric_loss_drops_easy_negatives_and_keeps_positives_whole():
    logits = torch.tensor([[-4.0, 3.0, 0.0]], requires_grad=True)  # an easy negative, a positive, a hard negative
    targets = torch.tensor([[0.0, 1.0, 0.0]])
    asymmetric_loss(logits, targets).backward()
    grad = logits.grad[0]
    assert grad[0] == 0  # p = 0.018, below the 0.05 clip
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits[0, 1], torch.tensor(1.0))
    assert asymmetric_loss(logits[:, 1:2], targets[:, 1:2]).item() == pytest.approx(bce.item(), rel=1e-5)
    hard = torch.nn.functional.binary_cross_entropy_with_logits(logits[0, 2], torch.tensor(0.0))
    assert 0 < asymmetric_loss(logits[:, 2:], targets[:, 2:]).item() < hard.item() / 10


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    data = make_synthetic_posters(root / "posters", 240, seed=5)
    runs = []
    for seed, size in ((0, "48x72"), (1, "32x48")):
        out = root / f"cnn-{seed}"
        lab_ok("train-classifier", "--data", data, "--recipe", "classifier-tiny", "--size", size, "--seed", str(seed),
               "--out", out)
        runs.append(out)
    return root, data, runs


@pytest.mark.slow
def test_ensemble_chooses_on_validation_and_reads_like_a_classifier(members, capsys):
    root, data, runs = members
    out = root / "ens"
    lab_ok("ensemble", *runs, "--views", "flip", "--test-size", "48x72", "--out", out)
    info = json.loads((out / "ensemble.json").read_text())
    entry = info["models"]["classifier"]
    assert [m["run"] for m in entry["members"]] == [str(r.resolve()) for r in runs]
    assert sum(m["weight"] for m in entry["members"]) == pytest.approx(1, abs=1e-3)
    # Never below its best member on validation: each member alone is one of the weights it starts from.
    assert entry["val_macro_map"] >= max(m["val_macro_map"] for m in entry["members"]) - 1e-9
    assert info["size"] == [48, 72] and "scratch_cnn" in info["models"]  # cnn4 runs have no linear probe
    tried = [json.loads(line) for line in open(out / "metrics.jsonl")]
    # Member 0 at its own size with and without flips; member 1 also at 48x72: six readings, then the ensemble.
    assert [(t["member"], tuple(t["size"]), tuple(t["views"])) for t in tried[:6]] == [
        (0, (48, 72), ()), (0, (48, 72), ("flip",)), (1, (32, 48), ()), (1, (32, 48), ("flip",)),
        (1, (48, 72), ()), (1, (48, 72), ("flip",))]
    for m, k in zip(entry["members"], (0, 1)):  # what was kept is what scored best by min_gain, else plain
        mine = [t for t in tried if t["member"] == k]
        best = max(mine, key=lambda t: t["val_macro_map"])
        kept = best if best["val_macro_map"] >= mine[0]["val_macro_map"] + 0.002 else mine[0]
        assert (m["size"], m["views"]) == (kept["size"], kept["views"])

    lab_ok("evaluate", out)
    report = json.loads((out / "evaluation-test.json").read_text())
    assert report["backbone"] == "ensemble of cnn4, cnn4"
    assert report["macro_map"] > report["baselines"]["prior"]["macro_map"] + 0.2
    assert set(report["baselines"]) >= {"prior", "scratch_cnn"}
    capsys.readouterr()
    lab_ok("predict", out, data / "images" / "syn00003.jpg", "--json", "--cam", "--cam-dir", root / "cams")
    result = json.loads(capsys.readouterr().out)[0]
    assert len(result["genres"]) == 6 and (root / "cams" / "syn00003-cam.png").is_file()


@pytest.mark.slow
def test_evaluate_with_views_on_validation_matches_what_the_ensemble_measured(members):
    root, _, runs = members
    lab_ok("evaluate", runs[1], "--part", "val", "--views", "flip", "--size", "48x72")
    report = json.loads((runs[1] / "evaluation-val-flip-48x72.json").read_text())
    assert report["part"] == "val-flip-48x72" and report["views"] == ["flip"] and report["size"] == [48, 72]
    tried = [json.loads(line) for line in open(root / "ens" / "metrics.jsonl")]
    measured = next(t for t in tried if t["member"] == 1 and t["size"] == [48, 72] and t["views"] == ["flip"])
    assert report["macro_map"] == pytest.approx(measured["val_macro_map"], abs=1e-6)


@pytest.mark.slow
def test_a_resumed_ensemble_reads_back_the_readings_it_saved_and_makes_only_the_missing_ones(members, tmp_path,
                                                                                            capsys):
    _, _, runs = members
    out = tmp_path / "ens"
    lab_ok("ensemble", runs[1], "--views", "flip", "--out", out)
    first = [json.loads(line) for line in open(out / "metrics.jsonl")]
    readings = out / "val-readings"
    assert sorted(p.name for p in readings.iterdir()) == ["0-32x48-flip.npz", "0-32x48-none.npz"]
    # As if the fit was killed after its first reading, and that reading were the flipped one's.
    (readings / "0-32x48-flip.npz").replace(readings / "0-32x48-none.npz")
    (out / "ensemble.json").unlink()
    code, _, err = run_cli(capsys, "ensemble", runs[1], "--resume", "--out", out)
    assert code == 2 and "leave out" in err  # the members are the run's own
    lab_ok("ensemble", "--resume", "--out", out)
    again = [json.loads(line) for line in open(out / "metrics.jsonl")][len(first):]
    assert [t["member"] for t in again] == [0, "ensemble"] and again[0]["views"] == ["flip"]  # only the missing one
    assert again[0]["val_macro_map"] == pytest.approx(first[1]["val_macro_map"], abs=1e-9)
    member = json.loads((out / "ensemble.json").read_text())["models"]["classifier"]["members"][0]
    # The plain reading read back scores what the flipped one did, so flips add nothing and are not kept.
    assert member["views"] == [] and member["val_macro_map"] == pytest.approx(first[1]["val_macro_map"], abs=1e-9)


def test_ensemble_refuses_members_of_another_split_in_one_line(members, tmp_path, capsys):
    root, _, runs = members
    other = make_synthetic_posters(tmp_path / "other", 120, seed=9)
    lab_ok("train-classifier", "--data", other, "--recipe", "classifier-tiny", "--no-baselines", "--out",
           tmp_path / "other-run")
    capsys.readouterr()
    code, _, err = run_cli(capsys, "ensemble", runs[0], tmp_path / "other-run", "--out", tmp_path / "ens")
    assert code == 2 and "trained on another split" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ens").exists()
    code, _, err = run_cli(capsys, "ensemble", runs[0], "--views", "rotate", "--out", tmp_path / "ens")
    assert code == 2 and "unknown test-time view" in err
    code, _, err = run_cli(capsys, "ensemble", "--out", tmp_path / "ens")
    assert code == 2 and "give the classifier run folders" in err and len(err.strip().splitlines()) == 1
