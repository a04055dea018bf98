"""`fit_ensemble`: classifier runs combined into one reader of posters, all its choices made on validation.

For each member, the test-time views (lab.classifier.views) and the test size, among those asked, are
kept only where they raise its validation macro mAP by `min_gain` (each view is read once per size, and a
combination's reading is the average of its views'); then the members' weights are found
by coordinate ascent on the validation macro mAP of their weighted mean. No test poster is read here.

Each reading of validation (a member at a size with some views) is saved in the run's `val-readings/` as it is
made, so a fit that was stopped goes on (`--resume`) from the readings it has.
"""

from __future__ import annotations

import io
import itertools
import logging
import shutil
from pathlib import Path

import numpy as np
import torch

from lab.checkpoint import save_json, write_atomic
from lab.classifier.ensemble import MemberViews, weighted_mean
from lab.classifier.extra_features import precompute
from lab.classifier.inference import extra_feature_names, load_model, load_run_info
from lab.classifier.metrics import macro_map, tune_thresholds
from lab.classifier.model import INFERENCE_BATCH
from lab.classifier.options import EnsembleOptions
from lab.classifier.train import predict, rating_thresholds
from lab.classifier.views import check_views, view_indices
from lab.data.filters import PosterFilter
from lab.data.images import parse_size
from lab.data.poster_dataset import open_run_posters
from lab.runs import Run
from lab.training import use_precision

log = logging.getLogger(__name__)
WEIGHT_STEPS = (0.2, 0.1, 0.05, 0.02)  # the moves of the weights' coordinate ascent, coarse to fine
READINGS = "val-readings"


def fit_ensemble(opts: EnsembleOptions, run: Run, *, resume: bool = False, progress: bool = True) -> dict:
    """Fit the ensemble of `opts.members` in `run`, reading back the readings a stopped fit saved where `resume`;
    returns what ensemble.json records."""
    use_precision(opts.mixed_precision)
    members = [Path(m).resolve() for m in opts.members]
    infos = [load_run_info(m) for m in members]
    extra_sizes = [parse_size(s) for s in opts.test_sizes]
    # Every member reads the same posters, decoded once at the largest size any member may be tested at.
    size = max([tuple(i["size"]) for i in infos] + extra_sizes, key=lambda s: s[0] * s[1])
    posters = open_run_posters(Run.open(members[0]), size, PosterFilter.from_dict(infos[0]["filter"]),
                               progress=progress)
    shutil.copyfile(members[0] / "split.json", run.path / "split.json")
    # A member's frozen extra networks read the posters decoded at `size` from a file, computed once, instead of
    # again on every pass; at another size they read resized posters, which no file holds.
    extra = tuple(dict.fromkeys(n for i in infos for n in extra_feature_names(i)
                                if tuple(i["size"]) == size or size in extra_sizes))
    if extra:
        precompute(posters.cache, extra, progress=progress)
    val = posters.dataset("val")
    truth = posters.genre_matrix[posters.parts["val"]]
    chosen, every = [], check_views(opts.views)
    for k, (member, info) in enumerate(zip(members, infos)):
        model, tried = None, []
        for test_size in dict.fromkeys([tuple(info["size"]), *extra_sizes]):
            apart = None
            for views in view_sets(opts.views):
                saved = reading_path(run.path, k, test_size, views)
                predicted = load_reading(saved) if resume and saved.is_file() else None
                fresh = predicted is None
                if fresh:
                    if apart is None:  # every view read once; each combination's reading is an average of them
                        if model is None:
                            model = load_model(member, info)
                        apart = predict(MemberViews(model, test_size, every), val, INFERENCE_BATCH, progress=progress)
                    kept = view_indices(views, every)
                    # torch's mean, as `Ensemble.member_predict` takes it: the reading equals evaluate's to the bit.
                    predicted = {key: torch.from_numpy(value[:, kept]).mean(1).numpy() for key, value in apart.items()}
                score = macro_map(predicted["genres"], truth)
                if fresh:
                    run.log_metrics({"member": k, "run": str(member), "size": list(test_size),
                                     "views": list(views), "val_macro_map": score})
                    save_reading(predicted, saved)
                log.info("member %d (%s) at %dx%d, views %s: val macro mAP %.4f", k, member.name, *test_size,
                         "+".join(views) or "none", score)
                tried.append((score, test_size, views, predicted))
        plain = tried[0]
        best = max(tried, key=lambda t: t[0])
        chosen.append(best if best[0] >= plain[0] + opts.min_gain else plain)
    weights = fit_weights([c[3]["genres"] for c in chosen], truth)
    combined = weighted_mean([c[3] for c in chosen], weights)
    score = macro_map(combined["genres"], truth)
    run.log_metrics({"member": "ensemble", "weights": weights, "val_macro_map": score})
    log.info("ensemble of %d, weights %s: val macro mAP %.4f", len(members), weights, score)
    rating = infos[0].get("rating")
    entry = {"backbone": "ensemble of " + ", ".join(i["models"]["classifier"]["backbone"] for i in infos),
             "members": [{"run": str(m), "size": list(c[1]), "views": list(c[2]), "weight": w,
                          "val_macro_map": c[0], "val_macro_map_trained": info["models"]["classifier"]["val_macro_map"]}
                         for m, info, c, w in zip(members, infos, chosen, weights)],
             "val_macro_map": score, "thresholds": tune_thresholds(combined["genres"], truth).tolist(),
             **rating_thresholds(combined, posters, rating["median"] if rating else None)}
    info = {key: infos[0][key] for key in ("genres", "decades", "filter", "dataset", "prior", "rating")
            if key in infos[0]}
    info.update(size=list(size), precision=opts.mixed_precision, models={"classifier": entry})
    for name in ("linear_probe", "scratch_cnn"):  # the baselines evaluate sets beside it: the first member's
        owner = next((m for m, i in zip(members, infos) if name in i["models"]), None)
        if owner is not None:
            baseline = dict(load_run_info(owner)["models"][name])
            info["models"][name] = {**baseline, "file": str(owner / baseline["file"])}
    save_json(info, run.path / "ensemble.json")
    return info


def reading_path(run_dir: Path, k: int, size, views) -> Path:
    """Where a fit saves member k's validation reading at `size` (W, H) with `views`."""
    return Path(run_dir) / READINGS / f"{k}-{size[0]}x{size[1]}-{'+'.join(views) or 'none'}.npz"


def load_reading(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as saved:
        return dict(saved)


def save_reading(predicted: dict[str, np.ndarray], path: Path) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **predicted)
    path.parent.mkdir(exist_ok=True)
    write_atomic(path, buffer.getvalue())


def view_sets(views) -> list[tuple[str, ...]]:
    """Every combination of the views asked, none first."""
    views = check_views(views)
    return [combo for n in range(len(views) + 1) for combo in itertools.combinations(views, n)]


def fit_weights(scores: list[np.ndarray], truth: np.ndarray) -> list[float]:
    """Weights (summing to 1) of the members' genre probabilities that maximise macro mAP on `truth`: from
    the best of equal weights and each member alone (so the ensemble is never below its best member), move
    a share of one member's weight to another while that raises it, coarse moves first."""
    def score(w):
        return macro_map(sum(wi * s for wi, s in zip(w, scores)), truth)

    starts = [np.full(len(scores), 1 / len(scores)), *np.eye(len(scores))]
    best, weights = max(((score(w), w) for w in starts), key=lambda t: t[0])
    for step in WEIGHT_STEPS:
        improved = True
        while improved:
            improved = False
            for i, j in itertools.permutations(range(len(scores)), 2):
                moved = weights.copy()
                share = min(step, moved[j])
                moved[i] += share
                moved[j] -= share
                if share > 0 and (s := score(moved)) > best + 1e-9:
                    weights, best, improved = moved, s, True
    return [round(float(w), 4) for w in weights]
