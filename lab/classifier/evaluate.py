"""`evaluate_run`: the classifier and its baselines, on the same posters, in one report.

Genres and decade against the genre prior, the linear probe and the scratch CNN; the rating (from
the poster alone, and told the true genres and decade) against the training mean, a regression on
genres and decade with no poster, the linear probe and the scratch CNN.

On the run's own test split by default, or on every poster of another dataset folder. The JSON
is a contract other tools read (see README); the table is for people.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from lab.checkpoint import save_json
from lab.classifier.baselines import genre_decade_ratings, prior_scores
from lab.classifier.extra_features import precompute
from lab.classifier.inference import extra_feature_names, load_model, load_run_info
from lab.classifier.metrics import SEVEN_GENRES, rating_metrics, seven_genre_accuracy, summary
from lab.classifier.model import INFERENCE_BATCH
from lab.classifier.train import predict
from lab.classifier.views import check_views
from lab.data.filters import PosterFilter
from lab.data.poster_dataset import PARTS, PosterDataset, multi_hot, open_posters, open_run_posters
from lab.errors import LabError
from lab.runs import Run

BASELINES = ("prior", "linear_probe", "scratch_cnn", "mean_rating", "genre_decade")
RATINGS = (("rating", "rating", "alone"), ("rating_given_labels", "rating_given", "given"))  # report key, prediction, case
RATING_ROWS = [("n", "rated posters"), ("mae", "MAE"), ("spearman", "Spearman"),
               ("well_rated_acc", "well-rated accuracy"), ("auc", "well-rated AUC")]
ROWS = [("macro_map", "macro mAP"), ("micro_map", "micro mAP"), ("macro_f1", "macro F1 (tuned thr.)"),
        ("micro_f1", "micro F1 (tuned thr.)"), ("top3_hit", "top-3 hit rate"), ("acc7", "7-genre accuracy"),
        ("decade_acc", "decade accuracy"), ("decade_mae_years", "decade MAE (years)")]


def evaluate_run(run_dir: Path, data: Path | None = None, out: Path | None = None, *, part: str = "test",
                 views: tuple[str, ...] = (), size: tuple[int, int] | None = None,
                 progress: bool = True) -> tuple[dict, Path]:
    """Evaluate every model of the run on the same posters; returns the report and where it was written.

    `part` is the run's split part (test; val to choose test-time settings on). `views` (lab.classifier.views)
    and `size` (W, H) make the classifier read each poster that way; the baselines read the same posters at
    the run's own size.
    """
    if part not in PARTS:
        raise LabError(f"--part must be one of {', '.join(PARTS)}, not {part!r}")
    run = Run.open(run_dir)
    info = load_run_info(run_dir)
    own = tuple(info["size"])
    size = tuple(size or own)
    setting = "".join([f"-{'+'.join(check_views(views))}" if views else "",
                       f"-{size[0]}x{size[1]}" if size != own else ""])
    if data is None:
        posters = open_run_posters(run, size, PosterFilter.from_dict(info["filter"]), progress=progress)
        rows, name = posters.parts[part], part + setting
    else:
        posters = open_posters(data, size=size, progress=progress)
        rows = np.arange(len(posters.table))
        name = f"{Path(data).resolve().name}-{posters.fingerprint[:8]}{setting}"
    extra = extra_feature_names(info, size)
    if extra:
        precompute(posters.cache, extra, progress=progress)
    labels = multi_hot(posters.table.posters["genres"], info["genres"])  # the run's genres, not the data's
    years = posters.table.posters["year"].to_numpy()[rows]
    # The run's decade indices; -1 for a decade it never saw (the rating head is then not told it).
    decade_of = {d: k for k, d in enumerate(info["decades"])}
    decades = posters.table.posters["decade"].map(lambda d: decade_of.get(d, -1)).to_numpy(np.int64)
    dataset = PosterDataset(posters.images, rows, labels, decades, posters.ratings)
    ratings = posters.ratings[rows]
    rating = info.get("rating")
    figures = {}
    for model_name in ("classifier", "linear_probe", "scratch_cnn"):
        if model_name not in info["models"]:
            continue
        with torch.inference_mode():
            reading = {"views": views, "size": size} if model_name == "classifier" else {"size": own}
            model = load_model(run_dir, info, model_name, **reading)
            predicted = predict(model, dataset, INFERENCE_BATCH, progress=progress)
        entry = info["models"][model_name]
        figures[model_name] = summary(predicted["genres"], labels[rows], predicted["decades"], years, info["genres"],
                                      info["decades"], np.asarray(entry["thresholds"]))
        if "rating" in predicted:
            for key, output, case in RATINGS:
                figures[model_name][key] = rating_metrics(predicted[output], ratings, rating["median"],
                                                          entry["rating_thresholds"][case])
        if model_name == "classifier":
            _, confusion, _ = seven_genre_accuracy(predicted["genres"], labels[rows], info["genres"])
    genre_p, decade_p = prior_scores(info, len(rows))
    figures["prior"] = summary(genre_p, labels[rows], decade_p, years, info["genres"], info["decades"],
                               np.asarray(info["prior"]["genres"]))
    if rating is not None:
        figures["mean_rating"] = {"rating": rating_metrics(np.full(len(rows), rating["mean"]), ratings,
                                                           rating["median"], rating["median"])}
        by_labels = genre_decade_ratings(info, labels[rows], decades[rows])
        figures["genre_decade"] = {"rating_given_labels": rating_metrics(
            by_labels, ratings, rating["median"], rating["genre_decade"]["threshold"])}
    report = {**figures["classifier"], "baselines": {b: figures[b] for b in BASELINES if b in figures},
              "run": str(run_dir), "dataset": str(data or run.options["data"]), "part": name,
              "backbone": info["models"]["classifier"]["backbone"], "views": list(check_views(views)),
              "size": list(size)}
    out = Path(out) if out else run.path / f"evaluation-{name}.json"
    save_json(report, out)
    draw_confusion(confusion, out.with_name(f"confusion7-{name}.png"))
    return report, out


def format_report(report: dict) -> str:
    figures = {"classifier": report, **report["baselines"]}
    models = [m for m in figures if "macro_map" in figures[m]]
    lines = [f"{report['n_posters']} posters ({report['part']}), run {report['run']}",
             f"{'':24}" + "".join(f"{m:>14}" for m in models)]
    for key, label in ROWS:
        if key == "acc7":
            label = f"7-genre acc. (n={report['n_acc7']})"
        lines.append(f"{label:24}" + "".join(f"{_fmt(figures[m][key]):>14}" for m in models))
    for key, label in (("rating", "rating, poster alone"), ("rating_given_labels", "rating, told genres+decade")):
        rated = [m for m in figures if key in figures[m]]
        if not rated:
            continue
        lines.append(f"{label + ':':24}" + "".join(f"{m:>14}" for m in rated))
        for metric, metric_label in RATING_ROWS:
            lines.append(f"  {metric_label:22}" + "".join(f"{_fmt(figures[m][key][metric]):>14}" for m in rated))
    lines.append("per-genre AP:")
    for genre, ap in report["per_genre_ap"].items():
        lines.append(f"  {genre:22}" + "".join(f"{_fmt(figures[m]['per_genre_ap'][genre]):>14}" for m in models))
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, int):
        return str(value)
    return "-" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"


def draw_confusion(confusion: np.ndarray, path: Path, cell: int = 56) -> None:
    """The 7-genre confusion matrix (rows: true genre, columns: predicted) as a PNG."""
    margin = 96
    im = Image.new("RGB", (margin + 7 * cell + 8, margin + 7 * cell + 8), "white")
    d = ImageDraw.Draw(im)
    row_share = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    for i in range(7):
        d.text((4, margin + i * cell + cell // 2 - 5), SEVEN_GENRES[i], fill="black")
        d.text((margin + i * cell + 4, margin - 16 - (i % 2) * 14), SEVEN_GENRES[i], fill="black")
        for j in range(7):
            shade = int(255 * (1 - row_share[i, j]))
            x, y = margin + j * cell, margin + i * cell
            d.rectangle([x, y, x + cell - 1, y + cell - 1], fill=(shade, shade, 255), outline="grey")
            d.text((x + 6, y + cell // 2 - 5), str(confusion[i, j]), fill="black" if shade > 110 else "white")
    d.text((4, 4), "true genre (rows) vs predicted (columns)", fill="black")
    im.save(path)
