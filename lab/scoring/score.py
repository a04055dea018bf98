"""`score_samples`: how well generated posters match their condition, and how real they look.

A trained classifier reads every sample: genre fidelity is the share of samples whose asked-for
genre is among its top 3 (for several genres, the share of them that are), beside the same figure
for the real test posters of that condition, the ceiling a perfect generator would reach. FID/KID
and precision/recall compare each condition's samples with those real posters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lab.checkpoint import save_json
from lab.classifier.inference import classify_images, load_model, load_run_info
from lab.data.filters import PosterFilter
from lab.data.poster_dataset import open_posters, open_run_posters
from lab.errors import LabError
from lab.generation.condition import Condition
from lab.generation.samples import read_conditions, read_samples
from lab.runs import Run
from lab.scoring.extractors import choose_extractor
from lab.scoring.fidelity import fidelity, image_features, missing_note

SCORES_FILE = "scores.json"
TOP = 3


def score_samples(samples_dir: Path, classifier_run: Path, real: Path | None = None,
                  flt: PosterFilter = PosterFilter(), extractor: str = "auto", inception_weights: Path | None = None,
                  out: Path | None = None, progress: bool = True) -> tuple[dict, Path]:
    """Score the samples in `samples_dir`; returns the report and where scores.json went."""
    samples_dir = Path(samples_dir)
    summary, images = read_samples(samples_dir)
    info = load_run_info(classifier_run)
    conditions = [c for c in read_conditions(summary) if _passes(c, flt)]
    if not conditions:
        raise LabError(f"no condition of {samples_dir} passes the filters")
    for c in conditions:
        unknown = [g for g in c.genres if g not in info["genres"]] + ([] if c.decade in info["decades"] else
                                                                       [f"{c.decade}s"])
        if unknown:
            raise LabError(f"classifier run {classifier_run} cannot judge {', '.join(unknown)}: it knows genres "
                           f"{', '.join(info['genres'])} and decades {info['decades'][0]}s-{info['decades'][-1]}s")
    name, weights = choose_extractor(extractor, inception_weights, Path(classifier_run))
    size = tuple(summary["size"])
    real_pixels, real_genres, real_decades, real_source = _real_posters(summary, real, size, progress)

    model = load_model(classifier_run, info)
    by_condition = [[k for k, r in enumerate(summary["images"]) if (tuple(r["genres"]), r["decade"]) ==
                     (c.genres, c.decade)] for c in conditions]
    fake_rows = np.array(sorted(k for rows in by_condition for k in rows))
    real_by_condition = [np.flatnonzero(np.all([[g in gs for gs in real_genres] for g in c.genres], 0)
                                        & (real_decades == c.decade)) for c in conditions]
    real_rows = np.unique(np.concatenate([np.asarray(r, np.int64) for r in real_by_condition]))
    fake_p = _by_image(fake_rows, classify_images(model, images[fake_rows], tuple(info["size"])))
    real_p = _by_image(real_rows, classify_images(model, real_pixels[real_rows], tuple(info["size"])))
    fake_f = dict(zip(fake_rows, image_features(images[fake_rows], name, weights)))
    real_f = dict(zip(real_rows, image_features(real_pixels[real_rows], name, weights))) if len(real_rows) else {}

    def judged(rows, predictions, c):
        return _fidelity_figures([predictions[k] for k in rows], [c] * len(rows), info)

    def stack(features, rows):
        return torch.stack([features[k] for k in rows]) if len(rows) else torch.zeros(0, 1)

    report_conditions = []
    for c, rows, reals in zip(conditions, by_condition, real_by_condition):
        entry = {**c.to_dict(), "n": len(rows), **judged(rows, fake_p, c),
                 **fidelity(stack(fake_f, rows), stack(real_f, reals)),
                 "real": {"n": len(reals), **judged(reals, real_p, c)}}
        report_conditions.append(entry)
    all_reals = [(k, c) for c, reals in zip(conditions, real_by_condition) for k in reals]
    overall = {"n": len(fake_rows),
               **_fidelity_figures([fake_p[k] for k in fake_rows],
                                   [Condition.from_dict(summary["images"][k]) for k in fake_rows], info),
               **fidelity(stack(fake_f, fake_rows), stack(real_f, real_rows)),
               "real": {"n": len(all_reals), **_fidelity_figures([real_p[k] for k, _ in all_reals],
                                                                 [c for _, c in all_reals], info)}}
    per_image = []
    for k in fake_rows:
        record = summary["images"][k]
        genre_p, decade_p, rating = fake_p[k]
        order = np.argsort(-genre_p)
        per_image.append({"file": record["file"], "genres": record["genres"], "decade": record["decade"],
                          "predicted_genres": {info["genres"][j]: round(float(genre_p[j]), 4) for j in order},
                          "predicted_decade": int(info["decades"][int(decade_p.argmax())]),
                          "predicted_rating": None if np.isnan(rating) else round(float(rating), 3)})
    report = {"extractor": name, "samples": str(samples_dir.resolve()), "generator_run": summary["run"],
              "classifier": str(Path(classifier_run).resolve()), "real": real_source, "size": list(size),
              "overall": overall, "conditions": report_conditions, "images": per_image}
    path = Path(out) if out else samples_dir / SCORES_FILE
    save_json(report, path)
    return report, path


def _passes(c: Condition, flt: PosterFilter) -> bool:
    return ((not flt.genres or any(g.lower() in {x.lower() for x in flt.genres} for g in c.genres))
            and (not flt.decades or c.decade in flt.decades))


def _real_posters(summary: dict, real: Path | None, size, progress: bool):
    """Pixels, genre lists and decades of the real reference posters, decoded at the samples' size.

    By default the generator run's own test split: posters it never trained on.
    """
    if real is None:
        run_dir = Path(summary["run"])
        try:
            run = Run.open(run_dir)
        except LabError:
            raise LabError(f"the generator run {run_dir} is gone; give --real DATASET to compare with") from None
        posters = open_run_posters(run, size, progress=progress)
        rows, source = posters.parts["test"], {"data": run.options["data"], "part": "test"}
    else:
        posters = open_posters(real, size=size, progress=progress)
        rows, source = np.arange(len(posters.table)), {"data": str(real), "part": "all"}
    table = posters.table.posters.iloc[rows]
    return (posters.images[rows], list(table["genres"]), table["decade"].to_numpy(), source)


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
    tag = f"[{report['extractor']}]"
    head = (f"{'condition':<24}{'n':>5}{'fidelity':>10}{'p(genre)':>10}{'decade':>8}   {'FID' + tag:>20}"
            f"{'KID' + tag:>22}{'prec':>7}{'rec':>7}{'rating':>8}   {'real: n':>8}{'fidelity':>10}{'p(genre)':>10}"
            f"{'decade':>8}{'rating':>8}")

    def num(v, width, fmt):
        return f"{'-':>{width}}" if v is None else f"{v:>{width}{fmt}}"

    def line(label, e):
        r = e["real"]
        return (f"{label:<24}{e['n']:>5}{num(e['genre_fidelity'], 10, '.3f')}{num(e['genre_prob'], 10, '.3f')}"
                f"{num(e['decade_acc'], 8, '.3f')}   {num(e['fid'], 20, '.1f')}{num(e['kid'], 22, '.4f')}"
                f"{num(e['precision'], 7, '.2f')}{num(e['recall'], 7, '.2f')}{num(e['rating_mean'], 8, '.2f')}   "
                f"{r['n']:>8}{num(r['genre_fidelity'], 10, '.3f')}{num(r['genre_prob'], 10, '.3f')}"
                f"{num(r['decade_acc'], 8, '.3f')}{num(r['rating_mean'], 8, '.2f')}")

    lines = [head, "-" * len(head)]
    lines += [line(Condition.from_dict(c).label(), c) for c in report["conditions"]]
    lines += ["-" * len(head), line("overall", report["overall"])]
    lines.append(f"fidelity: share of samples whose asked-for genre is in the classifier's top {TOP}; real: the "
                 f"same for real {report['real']['part']} posters of the condition (the ceiling a perfect generator "
                 f"reaches). FID/KID{tag}: computed on {report['extractor']} features. rating: the mean IMDb rating "
                 "the classifier predicts from the posters alone.")
    note = missing_note(report["conditions"] + [report["overall"]])
    return "\n".join(lines + ([note] if note else []))
