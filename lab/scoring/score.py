"""`score_samples`: how well generated posters match their condition, how real they look, and whether
they are new.

- Genre fidelity: a trained classifier reads every sample; the share whose asked-for genre is among
  its top 3, beside the same figure for the real test posters of that condition (the ceiling).
- Realism: FID/KID and precision/recall of each condition's samples against those real posters, in
  two feature spaces side by side: the standard Inception (or MobileNetV2 where it is missing) and
  the scratch CNN's, which shares nothing with ImageNet (lab.scoring.extractors).
- Genre signal: the genre the classifier picks among those asked, with the prior taken out, against
  chance and real posters (lab.scoring.genre_signal).
- Condition effects: how much the rows of a grid differ by genre and by decade (lab.scoring.condition_effect).
- Memorisation: the share of samples closer to a training poster than real posters are (lab.scoring.memorisation).
- With `cas`, the Classification Accuracy Score (lab.scoring.cas) of samples drawn like the training posters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lab.checkpoint import save_json
from lab.classifier.inference import classify_images, load_model, load_run_info, reading_runs
from lab.data.filters import PosterFilter
from lab.data.poster_dataset import Posters, multi_hot, open_posters
from lab.errors import LabError
from lab.generation.condition import Condition
from lab.generation.run_info import open_generator_posters
from lab.generation.samples import read_conditions, read_samples, steering_levers
from lab.runs import Run
from lab.scoring.cas import MIN_POSTERS, classification_accuracy_score
from lab.scoring.condition_effect import condition_effects
from lab.scoring.extractors import INDEPENDENT, choose_extractor
from lab.scoring.features import image_features
from lab.scoring.fidelity import fidelity, missing_note
from lab.scoring.genre_signal import genre_choice
from lab.scoring.memorisation import memorisation, thumbnails

SCORES_FILE = "scores.json"
TOP = 3
SHOWN_CLOSEST = 8  # samples nearest a training poster that the report shows


def score_samples(samples_dir: Path, classifier_run: Path, real: Path | None = None,
                  flt: PosterFilter = PosterFilter(), extractor: str = "auto", inception_weights: Path | None = None,
                  out: Path | None = None, *, cas: bool = False, judge: Path | None = None,
                  progress: bool = True) -> tuple[dict, Path]:
    """Score the samples in `samples_dir`; returns the report and where scores.json went.

    `judge` is the classifier run that reads the samples' genres and decade (default `classifier_run`, whose
    scratch CNN gives the feature space without ImageNet). Samples steered by a classifier run are read by
    that steerer too, and its figures stand beside the judge's.
    """
    samples_dir = Path(samples_dir)
    summary, images = read_samples(samples_dir)
    info = load_run_info(classifier_run)
    judge = Path(judge or classifier_run)
    judge_info = load_run_info(judge)
    conditions = [c for c in read_conditions(summary) if _passes(c, flt)]
    if not conditions:
        raise LabError(f"no condition of {samples_dir} passes the filters")
    for c in conditions:
        unknown = [g for g in c.genres if g not in judge_info["genres"]] + (
            [] if c.decade in judge_info["decades"] else [f"{c.decade}s"])
        if unknown:
            raise LabError(f"classifier run {judge} cannot judge {', '.join(unknown)}: it knows genres "
                           f"{', '.join(judge_info['genres'])} and decades {judge_info['decades'][0]}s-"
                           f"{judge_info['decades'][-1]}s")
    if cas and (not summary.get("like_training") or len(images) < MIN_POSTERS):
        raise LabError(f"--cas needs at least {MIN_POSTERS} samples drawn like the training posters: make them with "
                       f"`lab sample RUN --like-training -n 2000 --out DIR`")
    spaces = _feature_spaces(extractor, inception_weights, Path(classifier_run), info)
    size = tuple(summary["size"])
    generator_posters = _generator_posters(summary, size, progress)
    if real is None and generator_posters is None:
        raise LabError(f"the generator run {summary['run']} is gone; give --real DATASET to compare with")
    reference = open_posters(real, size=size, progress=progress) if real is not None else generator_posters
    ref_rows = np.arange(len(reference.table)) if real is not None else reference.parts["test"]
    ref_table = reference.table.posters.iloc[ref_rows]
    real_pixels, real_genres, real_decades = reference.images[ref_rows], list(ref_table["genres"]), \
        ref_table["decade"].to_numpy()

    by_condition = [[k for k, r in enumerate(summary["images"]) if (tuple(r["genres"]), r["decade"]) ==
                     (c.genres, c.decade)] for c in conditions]
    fake_rows = np.array(sorted(k for rows in by_condition for k in rows))
    real_by_condition = [np.flatnonzero(np.all([[g in gs for gs in real_genres] for g in c.genres], 0)
                                        & (real_decades == c.decade)) for c in conditions]
    real_rows = np.unique(np.concatenate([np.asarray(r, np.int64) for r in real_by_condition]))

    def readings(run: Path, run_info: dict) -> tuple[dict, dict]:
        model = load_model(run, run_info)
        return (_by_image(fake_rows, classify_images(model, images[fake_rows], tuple(run_info["size"]))),
                _by_image(real_rows, classify_images(model, real_pixels[real_rows], tuple(run_info["size"]))))

    def read_overall(fake_p, real_p, run_info) -> dict:
        all_reals = [(k, c) for c, reals in zip(conditions, real_by_condition) for k in reals]
        return {**_fidelity_figures([fake_p[k] for k in fake_rows],
                                    [Condition.from_dict(summary["images"][k]) for k in fake_rows], run_info),
                "real": {"n": len(all_reals), **_fidelity_figures([real_p[k] for k, _ in all_reals],
                                                                  [c for _, c in all_reals], run_info)},
                "genre_choice": _genre_choice(conditions, by_condition, real_by_condition, fake_p, real_p, run_info)}

    fake_p, real_p = readings(judge, judge_info)
    features = {}  # space -> (fake features by row, real features by row)
    for space, (name, weights) in spaces.items():
        fake_f = image_features(images[fake_rows], name, weights)
        real_f = image_features(real_pixels[real_rows], name, weights, cache=True)
        features[space] = (dict(zip(fake_rows, fake_f)), dict(zip(real_rows, real_f)))

    def judged(rows, predictions, c):
        return _fidelity_figures([predictions[k] for k in rows], [c] * len(rows), judge_info)

    def realism(fake_rows_, real_rows_) -> dict:
        figures = {}
        for k, (space, (fake_f, real_f)) in enumerate(features.items()):
            result = fidelity(_stack(fake_f, fake_rows_), _stack(real_f, real_rows_))
            figures.update(result if k == 0 else {"independent": result})
        return figures

    report_conditions = []
    for c, rows, reals in zip(conditions, by_condition, real_by_condition):
        report_conditions.append({**c.to_dict(), "n": len(rows), **judged(rows, fake_p, c), **realism(rows, reals),
                                  "real": {"n": len(reals), **judged(reals, real_p, c)}})
    judged_overall = read_overall(fake_p, real_p, judge_info)
    overall = {"n": len(fake_rows), **judged_overall, **realism(fake_rows, real_rows),
               **condition_effects(summary, images)}

    def read_run(run: Path) -> dict:
        run_info = load_run_info(run)
        return read_overall(*readings(run, run_info), run_info)

    steering = _steering(summary.get("steered_by"), judge, read_run, overall)
    per_image = []
    for k in fake_rows:
        record = summary["images"][k]
        genre_p, decade_p, rating = fake_p[k]
        order = np.argsort(-genre_p)
        per_image.append({"file": record["file"], "genres": record["genres"], "decade": record["decade"],
                          "predicted_genres": {judge_info["genres"][j]: round(float(genre_p[j]), 4) for j in order},
                          "predicted_decade": int(judge_info["decades"][int(decade_p.argmax())]),
                          "predicted_rating": None if np.isnan(rating) else round(float(rating), 3)})
    independent = INDEPENDENT if INDEPENDENT in spaces else None
    report = {"extractor": next(iter(spaces)), "independent": independent, "samples": str(samples_dir.resolve()),
              "generator_run": summary["run"], "classifier": str(Path(classifier_run).resolve()),
              "judge": str(judge.resolve()), "steering": steering,
              "real": {"data": str(real) if real is not None else generator_posters.table.root.as_posix(),
                       "part": "all" if real is not None else "test"},
              "size": list(size), "overall": overall, "conditions": report_conditions, "images": per_image,
              "memorisation": None, "cas": None}
    if generator_posters is not None:
        report["memorisation"] = _memorisation(images[fake_rows], [summary["images"][k]["file"] for k in fake_rows],
                                               generator_posters, spaces.get(INDEPENDENT))
    if cas:
        report["cas"] = _cas(summary, images, generator_posters, progress)
    path = Path(out) if out else samples_dir / SCORES_FILE
    save_json(report, path)
    return report, path


def _steering(steered_by: dict | None, judge: Path, read_overall, overall: dict) -> dict | None:
    """What steered the samples and, where the steering classifier is not the judge and is still here, its own
    reading of them beside the judge's: a steerer that rates its picks far above the judge found a pattern of
    its own, not the genre."""
    if not steered_by:
        return None
    steerer = Path(steered_by["classifier"])
    same = steerer.resolve() in reading_runs(judge)  # an ensemble that holds the steerer is no independent judge
    figures = None
    if not same and steerer.is_dir():
        figures = read_overall(steerer)
    gap = None if figures is None or overall["genre_fidelity"] is None else \
        figures["genre_fidelity"] - overall["genre_fidelity"]
    return {**steered_by, "judge_is_steerer": same, "steerer": figures, "fidelity_gap": gap}


def _genre_choice(conditions, by_condition, real_by_condition, fake_p, real_p, info) -> dict | None:
    """`genre_choice` over the folder's single-genre conditions."""
    single = [(c.genres[0], rows, reals) for c, rows, reals in zip(conditions, by_condition, real_by_condition)
              if len(c.genres) == 1]
    fake = [(fake_p[k][0], g) for g, rows, _ in single for k in rows]
    real = [(real_p[k][0], g) for g, _, reals in single for k in reals]
    if not fake or not real:
        return None
    return genre_choice(np.stack([p for p, _ in fake]), [g for _, g in fake], np.stack([p for p, _ in real]),
                        [g for _, g in real], info["genres"])


def _feature_spaces(extractor: str, inception_weights: Path | None, classifier_run: Path,
                    info: dict) -> dict[str, tuple[str, str | None]]:
    """{label: (torch-fidelity extractor, weights)}: the chosen space first, then the independent one where
    the classifier run has its scratch CNN (and it is not the chosen one already)."""
    label, name, weights = choose_extractor(extractor, inception_weights, classifier_run)
    spaces = {label: (name, weights)}
    if INDEPENDENT != label and INDEPENDENT in info["models"]:
        spaces[INDEPENDENT] = (INDEPENDENT, str(classifier_run))
    return spaces


def _generator_posters(summary: dict, size, progress: bool) -> Posters | None:
    """The generator run's dataset with its filter and split, at the samples' size; None if the run is gone."""
    try:
        Run.open(Path(summary["run"]))
    except LabError:
        return None
    return open_generator_posters(Path(summary["run"]), size, progress=progress)


def _memorisation(samples: np.ndarray, files: list[str], posters: Posters,
                  independent: tuple[str, str] | None) -> dict:
    parts = {part: posters.images[posters.parts[part]] for part in ("train", "val", "test")}
    points = {part: {"pixels": thumbnails(pixels)} for part, pixels in (("samples", samples), *parts.items())}
    if independent is not None:
        name, weights = independent
        points["samples"][INDEPENDENT] = image_features(samples, name, weights)
        for part, pixels in parts.items():
            points[part][INDEPENDENT] = image_features(pixels, name, weights, cache=True)
    result = memorisation(points["samples"], points["train"], points["val"], points["test"])
    ids = posters.table.posters["imdb_id"].to_numpy()[posters.parts["train"]]
    order = np.argsort(result["closeness"])[:SHOWN_CLOSEST]
    result["closest"] = [{"file": files[k], "nearest_train_id": str(ids[result["nearest"][k]]),
                          "closeness": round(result["closeness"][k], 4)} for k in order]
    result["spaces"] = list(points["samples"])
    del result["closeness"], result["nearest"]
    return result


def _cas(summary: dict, images: np.ndarray, posters: Posters | None, progress: bool) -> dict:
    if posters is None:
        raise LabError(f"--cas needs the generator run's training and test posters, and {summary['run']} is gone")
    genres, decades = posters.genres, posters.decades
    asked = [Condition.from_dict(r) for r in summary["images"]]
    generated = (images, multi_hot([c.genres for c in asked], genres),
                 np.array([decades.index(c.decade) for c in asked]))
    train = posters.parts["train"]
    drawn = np.sort(np.random.default_rng(summary["seed"]).choice(train, size=len(images), replace=len(images) > len(train)))
    real = (posters.images[drawn], posters.genre_matrix[drawn], posters.decade_index[drawn])
    test = posters.parts["test"]
    held_out = (posters.images[test], posters.genre_matrix[test], posters.decade_index[test])
    return classification_accuracy_score(generated, real, held_out, len(decades), seed=summary["seed"],
                                         progress=progress)


def _stack(features: dict, rows) -> torch.Tensor:
    return torch.stack([features[k] for k in rows]) if len(rows) else torch.zeros(0, 1)


def _passes(c: Condition, flt: PosterFilter) -> bool:
    return ((not flt.genres or any(g.lower() in {x.lower() for x in flt.genres} for g in c.genres))
            and (not flt.decades or c.decade in flt.decades))


def _by_image(rows: np.ndarray, predicted: dict) -> dict:
    """`classify_images`' arrays as {row: (genre probabilities, decade probabilities, rating)}; the rating
    is from the poster alone, NaN from a classifier with no rating head."""
    ratings = predicted.get("rating", np.full(len(rows), np.nan))
    return {k: (g, d, r) for k, g, d, r in zip(rows, predicted["genres"], predicted["decades"], ratings)}


def _fidelity_figures(predictions: list, conditions: list[Condition], info: dict) -> dict:
    """Genre fidelity (asked-for genres in the top 3), mean probability of them, decade accuracy, and the
    mean rating the classifier predicts from the posters alone (None without a rating head)."""
    if not predictions:
        return {"genre_fidelity": None, "genre_prob": None, "decade_acc": None, "rating_mean": None}
    col = {g: j for j, g in enumerate(info["genres"])}
    hits, probs, decades = [], [], []
    ratings = np.array([rating for _, _, rating in predictions])
    for (genre_p, decade_p, _), c in zip(predictions, conditions):
        top = set(np.argsort(-genre_p)[:TOP])
        hits.append(np.mean([col[g] in top for g in c.genres]))
        probs.append(np.mean([genre_p[col[g]] for g in c.genres]))
        decades.append(info["decades"][int(decade_p.argmax())] == c.decade)
    return {"genre_fidelity": float(np.mean(hits)), "genre_prob": float(np.mean(probs)),
            "decade_acc": float(np.mean(decades)),
            "rating_mean": None if np.isnan(ratings).all() else float(np.nanmean(ratings))}


def format_scores(report: dict) -> str:
    tag, free = f"[{report['extractor']}]", report.get("independent")
    head = (f"{'condition':<24}{'n':>5}{'fidelity':>10}{'decade':>8}   {'FID' + tag:>26}{'KID' + tag:>24}"
            f"{'prec':>6}{'rec':>6}" + (f"   {f'FD[{free}]':>16}{'prec':>6}{'rec':>6}" if free else "")
            + f"{'rating':>8}   {'real: n':>8}{'fidelity':>10}{'decade':>8}")

    def num(v, width, fmt):
        return f"{'-':>{width}}" if v is None else f"{v:>{width}{fmt}}"

    def line(label, e):
        r, i = e["real"], e.get("independent") or {}
        return (f"{label:<24}{e['n']:>5}{num(e['genre_fidelity'], 10, '.3f')}{num(e['decade_acc'], 8, '.3f')}   "
                f"{num(e['fid'], 26, '.1f')}{num(e['kid'], 24, '.4f')}{num(e['precision'], 6, '.2f')}"
                f"{num(e['recall'], 6, '.2f')}"
                + (f"   {num(i.get('fid'), 16, '.2f')}{num(i.get('precision'), 6, '.2f')}"
                   f"{num(i.get('recall'), 6, '.2f')}" if free else "")
                + f"{num(e['rating_mean'], 8, '.2f')}   {r['n']:>8}{num(r['genre_fidelity'], 10, '.3f')}"
                f"{num(r['decade_acc'], 8, '.3f')}")

    overall = report["overall"]
    lines = [head, "-" * len(head)]
    lines += [line(Condition.from_dict(c).label(), c) for c in report["conditions"]]
    lines += ["-" * len(head), line("overall", overall)]
    lines.append(f"fidelity: share of samples whose asked-for genre is in the classifier's top {TOP}; real: the "
                 f"same for real {report['real']['part']} posters of the condition (the ceiling a perfect generator "
                 f"reaches). FID/KID{tag} and precision/recall: on {report['extractor']} features"
                 + (f"; FD[{free}]: the Fréchet distance on features of a CNN trained from scratch on posters, with "
                    "no ImageNet in it" if free else "; no feature space without ImageNet: the classifier run has no "
                    "scratch CNN (train it with its baselines)")
                 + ". rating: the mean IMDb rating the classifier predicts from the posters alone.")
    effects = [f"{name} {overall[key]:.2f}" + (f" ({overall[f'{key}_blurred']:.2f} blurred)"
                                               if overall.get(f"{key}_blurred") is not None else "")
               for name, key in (("condition effect", "condition_effect"), ("genre effect", "genre_effect"),
                                 ("decade effect", "decade_effect"))
               if overall.get(key) is not None]
    if effects:
        lines.append(", ".join(effects) + " (rows of the same noise against columns of the same condition: "
                                          "0 means the condition changes nothing; blurred: on the posters shrunk "
                                          "to a quarter of their sides, where a pixel pattern no longer counts)")
    lines.append(f"judge (fidelity, decade, genre pick): {report.get('judge', report['classifier'])}")
    steering = report.get("steering")
    if steering:
        lines.append(f"steered by {steering['classifier']} ({steering_levers(steering)})"
                     + (": the judge is the steerer, so its fidelity, decade and genre pick rate its own picks; give "
                        "--judge another classifier run" if steering["judge_is_steerer"] else ""))
        figures = steering.get("steerer")
        if figures:
            pick = figures.get("genre_choice") or {}
            lines.append(f"the steerer's own reading: fidelity {_shown(figures['genre_fidelity'])} (real "
                         f"{_shown(figures['real']['genre_fidelity'])}), genre signal {_shown(pick.get('signal'))}; "
                         f"steerer minus judge fidelity {_shown(steering['fidelity_gap'])} (a growing gap: the "
                         "steering found a pattern of the steerer's, not the genre)")
    choice = overall.get("genre_choice")
    if choice:
        lines.append(f"genre pick: among the {len(choice['genres'])} genres asked, the judge's genre (each "
                     f"centred on real posters) is the asked one for {choice['samples']:.1%} of the samples, "
                     f"{choice['real']:.1%} of real posters, {choice['chance']:.1%} by chance: genre signal "
                     f"{_shown(choice['signal'])} (0: none, 1: as much as real posters)")
    memo = report.get("memorisation")
    if memo:
        lines.append(f"memorised: {memo['share']:.1%} of the samples (real test posters: {memo['real_test_share']:.1%});"
                     f" a poster counts as memorised when {memo['rule']}")
    cas = report.get("cas")
    if cas:
        lines.append(f"CAS ({cas['recipe']}, {cas['n']} posters each, tested on {cas['n_test']} real test posters): "
                     f"macro mAP {cas['generated']['macro_map']:.3f} trained on samples, {cas['real']['macro_map']:.3f} "
                     f"on real posters (chance {cas['chance']['macro_map']:.3f}): ratio {cas['map_ratio']:.2f}, "
                     f"{_shown(cas['map_ratio_above_chance'])} above chance; decade accuracy "
                     f"{cas['generated']['decade_acc']:.3f} against {cas['real']['decade_acc']:.3f} "
                     f"(chance {cas['chance']['decade_acc']:.3f}): ratio {_shown(cas['decade_ratio'])}")
    note = missing_note(report["conditions"] + [overall])
    return "\n".join(lines + ([note] if note else []))


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
