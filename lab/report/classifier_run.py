"""The classifier part of a report: its figures against the baselines, and what it sees in the test posters.

The headline table is read from `lab evaluate`'s file (the baselines are not run again); everything
about single posters comes from running the classifier once more on the run's test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lab.checkpoint import read_json
from lab.classifier.evaluate import RATING_ROWS, ROWS
from lab.classifier.gradcam import grad_cam, overlay
from lab.classifier.inference import classify_images, load_model, load_run_info
from lab.classifier.metrics import SEVEN_GENRES, per_class_ap, seven_genre_accuracy
from lab.classifier.model import GenreClassifier
from lab.data.filters import PosterFilter
from lab.data.poster_dataset import multi_hot, open_run_posters
from lab.errors import LabError
from lab.kinds import kind_of
from lab.report import plots
from lab.report.blocks import Figure, Gallery, Missing, Part, Row, Section, Table, Tile
from lab.report.embed import image_uri
from lab.runs import Run

EVALUATION_FILE = "evaluation-test.json"
SHOWN = 8  # posters per genre the model is surest of, and as many it gets most wrong
CAMS = 2  # of each of those, the first CAMS get a Grad-CAM heatmap
THUMB_WIDTH = 96
CHUNK = 256  # posters classified between two updates of the progress bar
MODEL_NAMES = {"classifier": "classifier", "prior": "genre prior", "linear_probe": "linear probe",
               "scratch_cnn": "scratch CNN", "mean_rating": "mean rating", "genre_decade": "genre+decade only"}
RATING_CASES = (("rating", "rating, poster alone"), ("rating_given_labels", "rating, told genres and decade"))


@dataclass
class TestPosters:
    """The run's test posters and what the classifier says about them."""
    images: np.ndarray  # (N, H, W, 3) uint8 at the classifier's size
    titles: list[str]
    years: np.ndarray
    labels: np.ndarray  # (N, G) multi-hot over the run's genres
    genre_p: np.ndarray  # (N, G)
    decade_p: np.ndarray  # (N, D)
    ratings: np.ndarray  # (N,) the films' ratings, NaN where unknown
    rating_p: np.ndarray | None  # (N,) predicted from the poster alone; None without a rating head

    def caption(self, k: int, genres: list[str], note: str = "") -> str:
        top = np.argsort(-self.genre_p[k])[:3]
        guessed = " · ".join(f"{genres[j]} {self.genre_p[k, j]:.0%}" for j in top)
        truth = ", ".join(g for g, y in zip(genres, self.labels[k]) if y) or "none of the run's genres"
        return f"{self.titles[k]} ({self.years[k]}){note}\n{guessed}\nis: {truth}"


def classifier_page(run_dir: Path, progress: bool = True) -> list[Part]:
    """The page of a classifier run of its own."""
    return [classifier_part(run_dir, progress=progress)]


def classifier_part(run_dir: Path, part_id: str = "classifier", progress: bool = True) -> Part:
    run_dir = Path(run_dir)
    run = Run.open(run_dir)
    kind = kind_of(run_dir)
    part = Part(part_id, "Genre classifier" if kind.name == "classifier" else "Classifier ensemble", str(run_dir))
    add = part.sections.append
    if not (run_dir / kind.run_file).is_file():
        add(Section(f"{part_id}-model", "Trained classifier", [Missing(
            f"the trained {kind.title} ({kind.run_file}): it has not finished, so there is nothing to "
            "evaluate yet", f"lab train-classifier --out {run_dir} --resume" if kind.name == "classifier"
            else "lab ensemble RUN ... (again)")]))
        add(_curves(run, part_id))
        return part
    info = load_run_info(run_dir)
    evaluation = _evaluation(run_dir)
    add(_headline(run_dir, evaluation, part_id))
    model = load_model(run_dir, info)
    try:
        test = _classify_test_posters(run, info, model, progress)
    except LabError as e:  # the dataset moved or changed: the figures that need posters say so
        add(Section(f"{part_id}-posters", "Test posters", [Missing(
            f"the run's test posters ({e}); the sections about single posters need them", None)]))
        add(_curves(run, part_id))
        return part
    genres = info["genres"]
    order = list(np.argsort(info["prior"]["genres"])[::-1])  # most frequent genre first
    add(_per_genre_ap(test, info, evaluation, part_id))
    add(_seven_genre_confusion(test, genres, part_id))
    add(_thresholds(test, info, part_id))
    picks = {j: _surest_and_wrongest(test, j) for j in order}
    add(_posters_per_genre(test, genres, picks, part_id))
    add(_grad_cams(model, info, test, picks, part_id))
    if test.rating_p is not None:
        add(_best_and_worst_rated(model, test, part_id))
    add(_curves(run, part_id) if kind.name == "classifier" else _ensemble_choices(run, info, part_id))
    add(_decade_confusion(test, info, part_id))
    return part


def _evaluation(run_dir: Path) -> dict | None:
    path = run_dir / EVALUATION_FILE
    return read_json(path, "evaluation", f"delete it and run `lab evaluate {run_dir}` again") if path.is_file() else None


def _headline(run_dir: Path, evaluation: dict | None, part_id: str) -> Section:
    section = Section(f"{part_id}-headline", "Against the baselines")
    if evaluation is None:
        section.blocks.append(Missing(f"the evaluation on the test split ({EVALUATION_FILE})",
                                      f"lab evaluate {run_dir}"))
        return section
    figures = {"classifier": evaluation, **evaluation["baselines"]}
    columns = ["figure", *(MODEL_NAMES.get(m, m) for m in figures)]
    rows = []
    for key, label in ROWS:
        if key == "acc7":
            label = f"7-genre accuracy ({evaluation['n_acc7']} posters)"
        cells = [figures[m].get(key) for m in figures]
        rows.append([label, *("-" if v is None or v != v else f"{v:.1f}" if key == "decade_mae_years" else f"{v:.3f}"
                              for v in cells)])
    for case, case_label in RATING_CASES:
        for key, label in RATING_ROWS:
            cells = [figures[m].get(case, {}).get(key) for m in figures]
            if any(v is not None for v in cells):
                rows.append([f"{case_label}: {label}", *("-" if v is None else str(v) if key == "n" else f"{v:.3f}"
                                                         for v in cells)])
    section.intro = (f"{evaluation['n_posters']} test posters, all models on the same ones "
                     f"(from {EVALUATION_FILE}, written by `lab evaluate`).")
    section.blocks.append(Table(columns, rows))
    return section


def _classify_test_posters(run: Run, info: dict, model: GenreClassifier, progress: bool) -> TestPosters:
    size = tuple(info["size"])
    posters = open_run_posters(run, size, PosterFilter.from_dict(info["filter"]), progress=progress)
    rows = posters.parts["test"]
    if not len(rows):
        raise LabError("the test part of the split is empty")
    table = posters.table.posters.iloc[rows]
    images = posters.images[rows]
    chunks = [classify_images(model, images[start:start + CHUNK], size)
              for start in tqdm(range(0, len(rows), CHUNK), desc="report: classifying the test posters",
                                unit="chunk", disable=not progress, leave=False)]
    p = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
    return TestPosters(images, list(table["title"]), table["year"].to_numpy(),
                       multi_hot(list(table["genres"]), info["genres"]), p["genres"], p["decades"],
                       posters.ratings[rows], p.get("rating"))


def _per_genre_ap(test: TestPosters, info: dict, evaluation: dict | None, part_id: str) -> Section:
    genres = info["genres"]
    ap = [None if np.isnan(a) else float(a) for a in per_class_ap(test.genre_p, test.labels)]
    probe = (evaluation or {}).get("baselines", {}).get("linear_probe")
    baseline = ("linear probe", [probe["per_genre_ap"].get(g) for g in genres]) if probe else None
    return Section(f"{part_id}-per-genre-ap", "Average precision per genre", [Figure(
        plots.ap_bars(genres, ap, info["prior"]["genres"], baseline), "AP per genre",
        "Genres from the most to the least frequent in training; grey is the genre's share of the training "
        "posters, the AP a model that guesses reaches.")])


def _seven_genre_confusion(test: TestPosters, genres: list[str], part_id: str) -> Section:
    section = Section(f"{part_id}-confusion7", "The 7-genre confusion matrix")
    accuracy, matrix, n = seven_genre_accuracy(test.genre_p, test.labels, genres)
    if not n:
        lacking = [g for g in SEVEN_GENRES if g not in genres]
        section.blocks.append(Missing(
            f"the 7-genre confusion: the run's genres lack {', '.join(lacking)}" if lacking else
            "the 7-genre confusion: no test poster carries exactly one of the seven genres", None))
        return section
    section.blocks.append(Figure(plots.confusion(matrix, list(SEVEN_GENRES), "predicted (highest of the seven)",
                                                 "true genre"), "7-genre confusion matrix",
                                 f"{n} test posters carrying exactly one of the seven genres; accuracy "
                                 f"{accuracy:.3f}. Colour: share of the row."))
    return section


def _thresholds(test: TestPosters, info: dict, part_id: str) -> Section:
    thresholds = np.asarray(info["models"]["classifier"]["thresholds"])
    predicted = test.genre_p >= thresholds
    truth = test.labels.astype(bool)
    tp = (predicted & truth).sum(0)
    precision = tp / np.maximum(predicted.sum(0), 1)
    recall = np.where(truth.sum(0) > 0, tp / np.maximum(truth.sum(0), 1), np.nan)
    return Section(f"{part_id}-thresholds", "Precision and recall at the tuned thresholds", [Figure(
        plots.precision_recall(info["genres"], list(precision), list(recall), list(thresholds)),
        "precision and recall per genre",
        "A genre is predicted when its probability passes the threshold in brackets.")])


def _surest_and_wrongest(test: TestPosters, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Posters of genre j the model is surest of, and the posters it is most wrong about for j (the
    genre's posters it gives the lowest probability, or others it gives the highest)."""
    p, has = test.genre_p[:, j], test.labels[:, j] > 0
    positives = np.flatnonzero(has)
    surest = positives[np.argsort(-p[positives], kind="stable")[:SHOWN]]
    error = np.where(has, 1 - p, p)
    wrongest = np.argsort(-error, kind="stable")[:SHOWN]
    return surest, wrongest


def _posters_per_genre(test: TestPosters, genres: list[str], picks: dict, part_id: str) -> Section:
    section = Section(f"{part_id}-posters", "Surest and most wrong, per genre",
                      intro=f"For each genre, the {SHOWN} test posters of that genre the classifier gives the "
                            f"highest probability, and the {SHOWN} it is most wrong about: the genre's posters it "
                            "gives the lowest probability (missed) or others it gives the highest (false alarm). "
                            "Each with the classifier's top 3 genres and the poster's true ones.")
    for j, (surest, wrongest) in picks.items():
        def tiles(rows, wrong):
            return [Tile(image_uri(test.images[k], THUMB_WIDTH), test.titles[k], test.caption(
                k, genres, (" · missed" if test.labels[k, j] else " · false alarm") if wrong else ""))
                for k in rows]
        section.blocks.append(Row([Gallery("surest", tiles(surest, False)),
                                   Gallery("most wrong", tiles(wrongest, True))], genres[j]))
    return section


def _grad_cams(model: GenreClassifier, info: dict, test: TestPosters, picks: dict, part_id: str) -> Section:
    genres = info["genres"]
    chosen = [(k, j, kind) for j, (surest, wrongest) in picks.items()
              for kind, rows in (("surest", surest), ("most wrong", wrongest)) for k in rows[:CAMS]]
    heatmaps, _ = grad_cam(model, test.images[[k for k, _, _ in chosen]], [j for _, j, _ in chosen])
    by_genre: dict[int, list[Tile]] = {}
    for (k, j, kind), heat in zip(chosen, heatmaps):
        by_genre.setdefault(j, []).append(Tile(image_uri(overlay(test.images[k], heat)), test.titles[k],
                                               f"{kind}: {genres[j]} {test.genre_p[k, j]:.0%}\n{test.titles[k]}"))
    return Section(f"{part_id}-gradcam", "Where the classifier looks (Grad-CAM)",
                   [Row([Gallery(genres[j], tiles) for j, tiles in by_genre.items()])],
                   intro=f"Grad-CAM heatmaps of each genre's logit from the backbone's last convolutional block, "
                         f"over the genre's {CAMS} surest and {CAMS} most wrong posters: red is where the "
                         "evidence for the genre lies.")


def _best_and_worst_rated(model: GenreClassifier, test: TestPosters, part_id: str) -> Section:
    """As the VGG16 fresh/rotten study showed them: the posters predicted best and worst rated, with
    where the rating head looked."""
    order = np.argsort(-test.rating_p, kind="stable")
    galleries = []
    for title, rows in (("predicted best rated", order[:SHOWN]), ("predicted worst rated", order[::-1][:SHOWN])):
        heatmaps, _ = grad_cam(model, test.images[rows], rating=True)
        galleries.append(Gallery(title, [Tile(image_uri(overlay(test.images[k], heat), THUMB_WIDTH), test.titles[k],
                                              f"{test.titles[k]} ({test.years[k]})\npredicted {test.rating_p[k]:.1f}"
                                              f" · IMDb {_rating(test.ratings[k])}")
                                         for k, heat in zip(rows, heatmaps)]))
    return Section(f"{part_id}-rating", "Best and worst rated, from the poster alone", [Row(galleries)],
                   intro=f"The {SHOWN} test posters whose films the rating head, told nothing but the poster, "
                         f"rates highest and lowest, each with the film's IMDb rating and a Grad-CAM heatmap of "
                         "the predicted rating: red is what raised it.")


def _rating(value: float) -> str:
    return "unknown" if np.isnan(value) else f"{value:.1f}"


def _curves(run: Run, part_id: str) -> Section:
    section = Section(f"{part_id}-curves", "Training curves")
    records = [r for r in run.metrics() if "epoch" in r]
    if not records:
        section.blocks.append(Missing("training curves: metrics.jsonl has no epoch yet",
                                      f"lab train-classifier --out {run.path} --resume"))
        return section
    models = list(dict.fromkeys(r["model"] for r in records))
    panels = {title: {MODEL_NAMES.get(m, m): ([r["epoch"] for r in records if r["model"] == m],
                                              [r[key] for r in records if r["model"] == m]) for m in models}
              for key, title in (("train_loss", "training loss"), ("val_macro_map", "validation macro mAP"),
                                 ("train_posters_per_s", "training posters/s"))}
    section.blocks.append(Figure(plots.curves(panels, "epoch"), "training curves",
                                 "Per epoch, from metrics.jsonl."))
    return section


def _ensemble_choices(run: Run, info: dict, part_id: str) -> Section:
    """What the ensemble tried on validation for each member, and what it kept."""
    members = info["models"]["classifier"]["members"]
    rows = []
    for r in run.metrics():
        if r.get("member") == "ensemble":
            weights = ", ".join(map(str, r["weights"]))
            rows.append(["ensemble", "", "", f"{r['val_macro_map']:.3f}", f"weights {weights}"])
        elif "member" in r:
            m = members[r["member"]]
            kept = (m["size"], m["views"]) == (r["size"], r["views"])
            rows.append([Path(r["run"]).name, f"{r['size'][0]}x{r['size'][1]}", "+".join(r["views"]) or "none",
                         f"{r['val_macro_map']:.3f}", f"kept, weight {m['weight']:.2f}" if kept else ""])
    return Section(f"{part_id}-choices", "What validation chose",
                   [Table(["member", "size", "views", "validation macro mAP", ""], rows)],
                   intro="Each member's readings on the validation posters (test posters are never read to "
                         "choose), from metrics.jsonl.")


def _decade_confusion(test: TestPosters, info: dict, part_id: str) -> Section:
    decades = info["decades"]
    col = {d: i for i, d in enumerate(decades)}
    truth = np.array([col.get(int(y) // 10 * 10, -1) for y in test.years])
    known = truth >= 0
    guess = test.decade_p.argmax(1)
    matrix = np.zeros((len(decades), len(decades)), int)
    np.add.at(matrix, (truth[known], guess[known]), 1)
    accuracy = float((truth[known] == guess[known]).mean()) if known.any() else float("nan")
    return Section(f"{part_id}-decades", "Decade confusion", [Figure(
        plots.confusion(matrix, [f"{d}s" for d in decades], "predicted decade", "true decade"),
        "decade confusion matrix", f"{int(known.sum())} test posters; decade accuracy {accuracy:.3f}. "
                                   "Colour: share of the row.")])
