import csv
import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric

from conftest import POSTERS, SHARED, copy_real_subset, lab_ok, run_cli
from lab.data.filters import PosterFilter
from lab.data.images import decode_poster
from lab.data.poster_dataset import open_posters
from lab.data.synthetic import make_synthetic_posters
from lab.errors import LabError
from lab.generation.condition import Condition
from lab.generation.samples import read_samples
from lab.generation.sampling import sample_to_folder
from lab.generation.steering import Steerer
from lab.scoring.condition_effect import condition_effects
from lab.scoring.extractors import choose_extractor
from lab.scoring.features import image_features
from lab.scoring.genre_signal import genre_choice
from lab.scoring.fidelity import MIN_PRC_IMAGES, PRC_NEIGHBOURS, fidelity, frechet_distance, precision_recall
from lab.scoring.score import score_samples

TORCH_HOME = SHARED / "torch-home"


@pytest.fixture(autouse=True)
def _torch_home(monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(TORCH_HOME))


@pytest.fixture(scope="module")
def real_pixels(tmp_path_factory):
    """120 real posters at 64x96: two disjoint sets of 60."""
    folder, _ = copy_real_subset(tmp_path_factory.mktemp("fid") / "posters", 120)
    images = open_posters(folder, size=(64, 96), progress=False).images
    return images[np.arange(0, 120, 2)], images[np.arange(1, 120, 2)]


def _fid(a, b):
    return fidelity(image_features(a, "mobilenet_v2"), image_features(b, "mobilenet_v2"))["fid"]


def _noise(images, amount, seed=0):
    rng = np.random.default_rng(seed)
    noisy = images.astype(np.float32) + rng.normal(0, amount, images.shape)
    return noisy.clip(0, 255).astype(np.uint8)


def _blur(images, radius):
    return np.stack([np.asarray(Image.fromarray(im).filter(ImageFilter.GaussianBlur(radius))) for im in images])


def _shuffle_pixels(images, share, seed=0):
    """Move `share` of each poster's pixels to random places."""
    rng = np.random.default_rng(seed)
    out = images.copy().reshape(len(images), -1, 3)
    for im in out:
        moved = rng.choice(len(im), int(share * len(im)), replace=False)
        im[moved] = im[rng.permutation(moved)]
    return out.reshape(images.shape)


def test_frechet_distance_equals_torch_fidelitys_on_real_posters(real_pixels):
    a, b = (image_features(x, "mobilenet_v2") for x in real_pixels)

    def theirs(x, y):
        stats = [fid_features_to_statistics(f) for f in (x, y)]
        return fid_statistics_to_metric(*stats, verbose=False)[KEY_METRIC_FID]

    # Fewer posters than feature dimensions (the low-rank route), sets of unequal size both ways round,
    # and more posters than dimensions (the factored route).
    for x, y in ((a, b), (a[:20], b), (a, b[:20]), (a[:, :40], b[:, :40])):
        assert frechet_distance(x, y) == pytest.approx(theirs(x, y), rel=1e-5, abs=1e-6)


def test_fid_of_a_set_against_itself_is_about_zero(real_pixels):
    a, _ = real_pixels
    features = image_features(a, "mobilenet_v2")
    same = fidelity(features, features)
    # KID's unbiased estimate dips below zero for identical sets; it must not claim a distance.
    assert abs(same["fid"]) < 1e-3 and same["kid"] < 1e-3
    assert same["precision"] == 1.0 and same["recall"] == 1.0


@pytest.mark.parametrize("degrade, strengths", [(_noise, (10, 40, 120)), (_blur, (0.7, 1.5, 4)),
                                                (_shuffle_pixels, (0.05, 0.3, 1.0))])
def test_fid_grows_as_images_are_degraded(real_pixels, degrade, strengths):
    a, _ = real_pixels
    reference = image_features(a, "mobilenet_v2")
    fids = [fidelity(image_features(degrade(a, s), "mobilenet_v2"), reference)["fid"] for s in strengths]
    assert 0 < fids[0] < fids[1] < fids[2], fids


def test_fid_falls_as_real_images_replace_noise(real_pixels):
    a, b = real_pixels
    reference = image_features(a, "mobilenet_v2")
    noise = np.random.default_rng(1).integers(0, 256, b.shape, dtype=np.uint8)
    fids = []
    for k in (0, 20, 40, 60):
        mixed = np.concatenate([b[:k], noise[k:]])
        fids.append(fidelity(image_features(mixed, "mobilenet_v2"), reference)["fid"])
    assert fids == sorted(fids, reverse=True) and fids[0] > 2 * fids[-1], fids


# ---- precision and recall (Kynkaanniemi et al. 2019) ----

# Real posters on the x axis at 0..5; with k = 3 the radius of each is the distance to its 3rd nearest
# other point: 3 at the ends (0 and 5), 2 for 1..4. Fakes at y = 1 from x = 0 to 2 in steps of 0.5, and
# one far away at (0, 5); their radii: 1.5 at x = 0 and 2, 1 at 0.5..1.5, and the far one's sqrt(17).
HAND_REAL = torch.tensor([[x, 0.0] for x in range(6)], dtype=torch.float64)
HAND_FAKE = torch.tensor([[0, 1], [0.5, 1], [1, 1], [1.5, 1], [2, 1], [0, 5]], dtype=torch.float64)


def test_precision_and_recall_match_a_hand_computed_case():
    # Precision: every fake on the line lies within 1.2 of a real poster whose radius is >= 2; (0, 5) is 5
    # from (0, 0), radius 3: 5 of 6. Recall: (0,0), (1,0), (2,0) lie 1 below a fake of radius >= 1, (3,0)
    # is sqrt(2) from (2, 1), radius 1.5; (4,0) and (5,0) are out of reach: 4 of 6. Counting a point as
    # its own neighbour (radius = 2nd nearest other point) would give recall 2/6, swapping roles (4/6, 5/6).
    assert PRC_NEIGHBOURS == 3
    assert precision_recall(HAND_FAKE, HAND_REAL) == pytest.approx((5 / 6, 4 / 6))


def _torch_fidelity_precision_recall(fake, real):
    """torch-fidelity's own figures, its two arguments in the order its installed source documents."""
    source = inspect.getsource(prc_features_to_metric)
    generated_first = "features_1 is GENERATED" in source
    assert generated_first or "features_1 is REAL" in source, "torch-fidelity no longer states its convention"
    first, second = (fake, real) if generated_first else (real, fake)
    m = prc_features_to_metric(first, second, prc_neighborhood=PRC_NEIGHBOURS, save_cpu_ram=True, verbose=False)
    return m["precision"], m["recall"]


@pytest.fixture(scope="module")
def horror_2000s():
    """80 real Horror posters of the 2000s at 64x96, spread over the shared dataset."""
    if not (POSTERS / "metadata.csv").is_file():
        pytest.skip(f"the shared posters are not at {POSTERS} (set LAB_SHARED)")
    with open(POSTERS / "metadata.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if "Horror" in r["genres"].split("|") and 2000 <= int(r["year"]) < 2010]
    rows = rows[::len(rows) // 80][:80]
    return np.stack([decode_poster(POSTERS / r["image"], (64, 96)) for r in rows])


def test_precision_and_recall_agree_with_torch_fidelity(horror_2000s):
    assert _torch_fidelity_precision_recall(HAND_FAKE, HAND_REAL) == pytest.approx((5 / 6, 4 / 6))
    features = image_features(horror_2000s, "mobilenet_v2")
    fake, real = features[:30], features[30:]  # sets of different sizes, so that the roles matter
    ours = precision_recall(fake, real)
    assert ours == pytest.approx(_torch_fidelity_precision_recall(fake, real))
    assert ours != pytest.approx(ours[::-1])


def test_recall_is_high_for_diverse_posters_and_zero_for_a_collapsed_set(horror_2000s):
    features = image_features(horror_2000s, "mobilenet_v2")
    real = features[1::2]
    diverse = fidelity(features[0::2], real)  # other real posters of the same condition
    assert diverse["precision"] > 0.5 and diverse["recall"] > 0.5, diverse
    # A collapsed generator: one poster (not among the real ones) 40 times with faint noise. Its k-NN
    # balls are tiny, so no real poster falls in one: recall 0, however real the poster looks.
    noisy = horror_2000s[:1].astype(np.float32) + np.random.default_rng(0).normal(0, 3, (40, 96, 64, 3))
    collapsed = fidelity(image_features(noisy.clip(0, 255).astype(np.uint8), "mobilenet_v2"), real)
    assert collapsed["recall"] == 0 and collapsed["precision"] > 0.5, collapsed


def test_precision_and_recall_need_enough_posters_in_both_sets(real_pixels):
    a, b = (image_features(x, "mobilenet_v2") for x in real_pixels)
    assert fidelity(a[:MIN_PRC_IMAGES], b)["recall"] is not None
    for fake, real in ((a[:MIN_PRC_IMAGES - 1], b), (a, b[:MIN_PRC_IMAGES - 1])):
        few = fidelity(fake, real)
        assert few["precision"] is None and few["recall"] is None and few["fid"] is not None


def test_the_genre_signal_takes_the_prior_out_and_is_one_for_real_posters_and_zero_for_genre_blind_ones():
    rng = np.random.default_rng(0)
    vocabulary = ["Comedy", "Drama", "Horror", "Romance"]
    asked = ["Comedy", "Horror", "Romance"]

    def judged(genres, signal):
        """A judge's probabilities: Drama and Comedy high for everything (the prior), the poster's genre raised by
        `signal`. Uncentred, Comedy would win most picks of real posters (about 40% right)."""
        p = rng.uniform(0.05, 0.3, (len(genres), len(vocabulary)))
        p[:, 0] += 0.3
        p[:, 1] += 0.6
        p[np.arange(len(genres)), [vocabulary.index(g) for g in genres]] += signal * rng.uniform(0, 0.4, len(genres))
        return p.clip(0, 1)

    genres = [asked[k % 3] for k in range(600)]
    real = judged(genres, 1.0)
    same = genre_choice(judged(genres, 1.0), genres, real, genres, vocabulary)
    blind = genre_choice(judged(genres, 0.0), genres, real, genres, vocabulary)
    half = genre_choice(judged(genres, 0.3), genres, real, genres, vocabulary)
    assert same["chance"] == pytest.approx(1 / 3) and same["real"] > 0.75
    assert abs(same["signal"] - 1) < 0.15 and abs(blind["signal"]) < 0.15 and 0.2 < half["signal"] < 0.8
    # Drama, which this judge ranks first for every poster, wins no pick: only asked genres are picked from, and
    # a folder that asks for one genre has no pick to make.
    assert genre_choice(judged(genres[:1] * 5, 1.0), genres[:1] * 5, real, genres, vocabulary) is None


def test_condition_effects_tell_a_change_a_person_sees_from_a_pixel_pattern_that_a_blur_removes():
    """Rows of a grid that differ by genre in layout and colour keep their effect on posters shrunk to a quarter;
    rows that differ by a one-pixel checkerboard (what an adversarial texture looks like) lose it."""
    rng = np.random.default_rng(0)
    n, h, w = 6, 48, 32
    noises = rng.integers(60, 190, (n, h // 8, w // 8, 3)).repeat(8, 1).repeat(8, 2)  # each column's own layout
    checker = ((np.indices((h, w)).sum(0) % 2) * 2 - 1)[None, :, :, None]
    block = np.zeros((h, w, 1))
    block[: h // 2] = 1  # the top half's colour shifted: what a person sees
    made = {("Horror", 1980): noises, ("Comedy", 1980): noises + 50 * checker,
            ("Horror", 2000): noises + 50 * block}
    pixels = np.clip(np.concatenate(list(made.values())), 0, 255).astype(np.uint8)
    summary = {"n": n, "conditional": True, "same_noise": True,
               "images": [{"genres": [g], "decade": d, "index": i} for g, d in made for i in range(n)]}
    effects = condition_effects(summary, pixels)
    assert effects["genre_effect"] > 0.5 and effects["genre_effect_blurred"] < 0.02 * effects["genre_effect"]
    assert effects["decade_effect"] > 0.2 and effects["decade_effect_blurred"] > 0.8 * effects["decade_effect"]
    assert condition_effects({**summary, "same_noise": False}, pixels) == dict.fromkeys(effects)


def test_extractor_choice_is_explicit_about_inception(tmp_path):
    with pytest.raises(LabError, match="no such file.*mobilenet_v2"):
        choose_extractor("inception-v3-compat", tmp_path / "missing.pth", tmp_path)
    with pytest.raises(LabError, match="unknown extractor 'vgg'"):
        choose_extractor("vgg", None, tmp_path)
    assert choose_extractor("classifier", None, tmp_path) == ("classifier", "classifier", str(tmp_path))
    assert choose_extractor("scratch_cnn", None, tmp_path) == ("scratch_cnn", "scratch_cnn", str(tmp_path))
    assert choose_extractor("mobilenet_v2", None, tmp_path) == ("mobilenet_v2", "mobilenet_v2", None)


# ---- score-samples end to end on synthetic posters ----

@pytest.fixture(scope="module")
def lab_runs(tmp_path_factory):
    """A tiny GAN, its samples and a tiny classifier, all on the same synthetic posters."""
    root = tmp_path_factory.mktemp("score")
    data = make_synthetic_posters(root / "posters", 240, seed=5, size=(32, 48))
    mp = pytest.MonkeyPatch()
    mp.setenv("TORCH_HOME", str(TORCH_HOME))
    for args in (["train-gan", "--size", "32x48", "--channels", "8", "--steps", "10", "--batch-size", "16"],
                 ["train-classifier", "--size", "32x48", "--schedule", "2:0", "--no-baselines"]):
        name = "gan" if args[0] == "train-gan" else "classifier"
        lab_ok(*args, "--data", str(data), "--out", str(root / name))
    samples, _ = sample_to_folder(root / "gan", ["Horror", "Comedy"], ["1950", "2010"], 6, 0, root / "samples")
    mp.undo()
    return root, samples


def test_score_samples_writes_the_contract_and_the_real_ceiling(lab_runs, capsys):
    root, samples = lab_runs
    capsys.readouterr()
    lab_ok("score-samples", str(samples), "--classifier", str(root / "classifier"), "--extractor", "mobilenet_v2")
    out = capsys.readouterr().out
    assert "FID[mobilenet_v2]" in out and "KID[mobilenet_v2]" in out and "Horror, 1950s" in out
    # 6 samples a condition are too few for precision/recall: the table says why they are missing.
    assert f"precision/recall {MIN_PRC_IMAGES} of each" in out
    scores = json.loads((samples / "scores.json").read_text())
    assert scores["extractor"] == "mobilenet_v2"
    assert [(c["genres"], c["decade"]) for c in scores["conditions"]] == \
        [(["Horror"], 1950), (["Horror"], 2010), (["Comedy"], 1950), (["Comedy"], 2010)]
    keys = {"genres", "decade", "n", "genre_fidelity", "genre_prob", "decade_acc", "fid", "kid", "real"}
    for c in scores["conditions"]:
        assert keys <= set(c) and c["n"] == 6 and 0 <= c["genre_fidelity"] <= 1 and 0 <= c["genre_prob"] <= 1
        assert {"n", "genre_fidelity", "genre_prob", "decade_acc"} <= set(c["real"])
        # The classifier learned the synthetic ratings: each condition's samples and real posters get a mean.
        assert 1 <= c["rating_mean"] <= 10 and (c["real"]["rating_mean"] is None) == (c["real"]["n"] == 0)
        assert c["real"]["n"] == 0 or 1 <= c["real"]["rating_mean"] <= 10
    overall = scores["overall"]
    assert overall["n"] == 24 and overall["fid"] > 0 and overall["real"]["n"] > 0
    # The classifier learned the synthetic genres, so real posters of a condition sit near the ceiling.
    assert overall["real"]["genre_fidelity"] > 0.6
    choice = overall["genre_choice"]  # Comedy against Horror, in the vocabulary's order: real posters' genre is picked well above chance
    assert choice["genres"] == ["Comedy", "Horror"] and choice["chance"] == 0.5 and choice["real"] > 0.7
    assert 0 <= choice["samples"] <= 1 and "genre signal" in out
    assert all(1 <= image["predicted_rating"] <= 10 for image in scores["images"])
    assert len(scores["images"]) == 24 and set(scores["images"][0]["predicted_genres"]) == \
        {"Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi"}
    # The reference is the generator run's test split: posters it never trained on.
    split = json.loads((root / "gan" / "split.json").read_text())
    assert scores["real"]["part"] == "test" and overall["real"]["n"] <= len(split["test"])


def test_the_classifier_extractor_and_filters_work_too(lab_runs, tmp_path):
    root, samples = lab_runs
    report, path = score_samples(samples, root / "classifier", extractor="classifier", out=tmp_path / "s.json",
                                 flt=PosterFilter(("Horror",)),
                                 progress=False)
    assert report["extractor"] == "classifier" and path.is_file()
    assert [c["genres"] for c in report["conditions"]] == [["Horror"], ["Horror"]]


@pytest.mark.slow
def test_score_samples_errors_are_one_clear_line(lab_runs, tmp_path, capsys):
    root, samples = lab_runs
    classifier = str(root / "classifier")

    def error(folder, run=classifier):
        capsys.readouterr()
        code, _, err = run_cli(capsys, "score-samples", folder, "--classifier", run)
        assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")
        return err

    (tmp_path / "empty").mkdir()
    assert "is empty" in error(tmp_path / "empty")
    (tmp_path / "loose").mkdir()
    Image.new("RGB", (32, 48)).save(tmp_path / "loose" / "a.png")
    assert "no samples.json" in error(tmp_path / "loose")

    wrong = tmp_path / "wrong"
    wrong.mkdir()
    for p in samples.iterdir():
        (wrong / p.name).write_bytes(p.read_bytes())
    Image.open(wrong / "horror-1950s-0003.png").resize((64, 96)).save(wrong / "horror-1950s-0003.png")
    assert "horror-1950s-0003.png is 64x96" in error(wrong)

    other = make_synthetic_posters(tmp_path / "westerns", 120, seed=1, size=(32, 48),
                                   genres=("Western", "War", "Musical"))
    lab_ok("train-classifier", "--data", str(other), "--size", "32x48", "--schedule", "1:0", "--no-baselines",
         "--out", str(tmp_path / "other-classifier"))
    assert "cannot judge Horror" in error(samples, str(tmp_path / "other-classifier"))
    assert "not a run folder" in error(samples, str(tmp_path / "nowhere"))


def _tiny_demo(tmp_path, posters: int, steps: int, batch: int, n: int) -> Path:
    """`lab demo` on synthetic posters with the smallest classifier and GAN; returns its folder."""
    data = make_synthetic_posters(tmp_path / "posters", posters, seed=6, size=(32, 48))
    (tmp_path / "clf.toml").write_text('size = "32x48"\nschedule = [[1, 0.0]]\nbaselines = false\n')
    (tmp_path / "gan.toml").write_text(f'size = "32x48"\nchannels = 8\nz_dim = 16\nsteps = {steps}\n'
                                       f'batch_size = {batch}\n')
    lab_ok("demo", "--data", str(data), "--out", str(tmp_path / "demo"), "-n", str(n),
         "--classifier-recipe", str(tmp_path / "clf.toml"), "--generator-recipe", str(tmp_path / "gan.toml"))
    return tmp_path / "demo"


@pytest.mark.slow
def test_demo_with_too_few_real_posters_for_fid_says_so(tmp_path, capsys):
    demo = _tiny_demo(tmp_path, posters=40, steps=2, batch=8, n=2)
    headline = json.loads((demo / "headline.json").read_text())
    assert headline["fid"] is None and "too few real test posters" in capsys.readouterr().out


# ---- steering: best of N, judged by a classifier that did not steer ----

def test_best_of_n_keeps_the_steerers_favourite_draw_and_a_judge_reads_it_beside_the_steerer(lab_runs, tmp_path,
                                                                                           capsys):
    root, plain = lab_runs
    steer, judge, steered = root / "classifier", tmp_path / "judge", tmp_path / "steered"
    # The judge differs from the steerer in architecture (a CNN from scratch, no ImageNet) and in seed.
    lab_ok("train-classifier", "--data", root / "posters", "--out", judge, "--size", "32x48", "--schedule", "2:1",
           "--no-baselines", "--backbone", "cnn4", "--no-pretrained", "--seed", "1")
    code, out, err = run_cli(capsys, "sample", root / "gan", "--genre", "Horror", "--genre", "Comedy", "--decade", "1950",
                             "--decade", "2010", "-n", "6", "--steer", steer, "--select-of", "4", "--out", steered)
    assert code == 0, err
    summary, images = read_samples(steered)
    assert summary["steered_by"] == {"classifier": str(steer.resolve()), "lever": "select_of", "select_of": 4}
    assert not summary["same_noise"]  # each condition kept draws of its own: the rows no longer share noises
    # A poster's first draw is the unsteered poster of its noise, so the steerer ranks no steered poster below it
    # (up to the rounding of a batch of another size), and most above: a later draw won.
    plain_summary, plain_images = read_samples(plain)
    assert [r["genres"] for r in plain_summary["images"]] == [r["genres"] for r in summary["images"]]
    conditions = [Condition.from_dict(r) for r in summary["images"]]
    steerer = Steerer(steer, 4)
    gain = steerer.log_likelihood(images, conditions) - steerer.log_likelihood(plain_images, conditions)
    assert gain.min() > -1e-3 and (gain > 1e-3).mean() > 0.5, gain

    code, out, err = run_cli(capsys, "score-samples", steered, "--classifier", steer, "--extractor", "mobilenet_v2")
    assert code == 0 and "the judge is the steerer" in out, err
    assert json.loads((steered / "scores.json").read_text())["steering"]["judge_is_steerer"]
    code, out, err = run_cli(capsys, "score-samples", steered, "--classifier", steer, "--judge", judge, "--extractor",
                             "mobilenet_v2", "--out", tmp_path / "judged.json")
    assert code == 0 and "the steerer's own reading" in out, err
    scores = json.loads((tmp_path / "judged.json").read_text())
    steering, by_steerer = scores["steering"], scores["steering"]["steerer"]
    assert scores["judge"] == str(judge.resolve()) and not steering["judge_is_steerer"]
    assert steering["fidelity_gap"] == pytest.approx(by_steerer["genre_fidelity"] - scores["overall"]["genre_fidelity"])
    assert 0 <= by_steerer["genre_fidelity"] <= 1 and by_steerer["real"]["n"] == scores["overall"]["real"]["n"]
    assert scores["overall"]["condition_effect"] is None
    # An ensemble judges like a classifier run; one that holds the steerer is marked as the steerer.
    for members, holds_steerer in (([judge], False), ([judge, steer], True)):
        ensemble = tmp_path / f"ensemble-{len(members)}"
        lab_ok("ensemble", *members, "--views", "flip", "--out", ensemble)
        code, out, err = run_cli(capsys, "score-samples", steered, "--classifier", steer, "--judge", ensemble,
                                 "--extractor", "mobilenet_v2", "--out", ensemble / "judged.json")
        assert code == 0, err
        judged = json.loads((ensemble / "judged.json").read_text())
        assert judged["steering"]["judge_is_steerer"] == holds_steerer and judged["judge"] == str(ensemble.resolve())
        assert 0 <= judged["overall"]["genre_fidelity"] <= 1
    lab_ok("score-samples", plain, "--classifier", steer, "--extractor", "mobilenet_v2", "--out", tmp_path / "plain.json")
    plain_scores = json.loads((tmp_path / "plain.json").read_text())
    assert plain_scores["steering"] is None and plain_scores["overall"]["condition_effect"] > 0  # nothing steered those


def test_steering_mistakes_are_one_line_and_make_no_folder(lab_runs, tmp_path, capsys):
    root, _ = lab_runs
    for args, message in ((["--select-of", "4"], "--select-of needs --steer"),
                          (["--steer", root / "classifier", "--select-of", "100"], "--select-of must be 2 to 64"),
                          (["--steer", root / "classifier"], "--steer needs a lever"),
                          (["--steer-scale", "0.5"], "--steer-scale needs --steer"),
                          (["--steer", root / "classifier", "--steer-scale", "-1"], "--steer-scale must be between"),
                          (["--steer", root / "classifier", "--steer-scale", "0.5"], "is for diffusion runs"),
                          (["--steer", root / "gan", "--select-of", "4"], "not a classifier run")):
        code, out, err = run_cli(capsys, "sample", root / "gan", "--genre", "Horror", "--decade", "1950", "-n", "2",
                                 "--out", tmp_path / "s", *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "s").exists()
