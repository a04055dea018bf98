"""Metrics for multi-label genres and decades, in numpy, each checked against hand-computed cases."""

from __future__ import annotations

import numpy as np

# The 7-genre single-label protocol of an earlier ResNet-18 poster project.
SEVEN_GENRES = ("Action", "Animation", "Comedy", "Drama", "Horror", "Romance", "Thriller")


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Non-interpolated AP: the mean of the precision at each true positive's rank.

    Tied scores are one threshold, as in scikit-learn: sum over thresholds of (ΔRecall × Precision).
    NaN when there is no positive.
    """
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    n_pos = labels.sum()
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(y)[last_of_tie]
    seen = np.flatnonzero(last_of_tie) + 1
    precision = tp / seen
    recall_step = np.diff(np.r_[0, tp]) / n_pos
    return float((precision * recall_step).sum())


def per_class_ap(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.array([average_precision(scores[:, j], labels[:, j]) for j in range(labels.shape[1])])


def macro_map(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean AP over the classes that have at least one positive."""
    return float(np.nanmean(per_class_ap(scores, labels)))


def micro_map(scores: np.ndarray, labels: np.ndarray) -> float:
    return average_precision(scores.ravel(), labels.ravel())


def f1_scores(predicted: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(macro F1 over classes with a positive or a prediction, micro F1)."""
    predicted, labels = predicted.astype(bool), labels.astype(bool)
    tp = (predicted & labels).sum(0)
    fp = (predicted & ~labels).sum(0)
    fn = (~predicted & labels).sum(0)
    used = (tp + fp + fn) > 0
    per_class = 2 * tp[used] / np.maximum(2 * tp[used] + fp[used] + fn[used], 1)
    micro = 2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1)
    return float(per_class.mean()) if used.any() else 0.0, float(micro)


def tune_thresholds(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per class, the threshold that maximises F1 (0.5 for a class with no positive)."""
    out = np.full(labels.shape[1], 0.5)
    for j in range(labels.shape[1]):
        y = labels[:, j].astype(bool)
        if not y.any():
            continue
        order = np.argsort(-scores[:, j], kind="stable")
        s, yy = scores[order, j], y[order]
        tp = np.cumsum(yy)
        f1 = 2 * tp / (np.arange(1, len(s) + 1) + y.sum())
        last_of_tie = np.r_[s[1:] != s[:-1], True]
        f1[~last_of_tie] = -1  # a threshold cannot split tied scores
        k = int(np.argmax(f1))
        out[j] = s[k] if k == len(s) - 1 else (s[k] + s[k + 1]) / 2
    return out


def top3_hit(scores: np.ndarray, labels: np.ndarray) -> float:
    """Share of posters for which any of the 3 highest-scored genres is a true genre."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :3]
    return float(np.take_along_axis(labels.astype(bool), top, axis=1).any(1).mean())


def seven_genre_accuracy(scores: np.ndarray, labels: np.ndarray, genres: list[str]):
    """Accuracy over posters carrying exactly one of SEVEN_GENRES, predicting the highest of the seven.

    Returns (accuracy, confusion matrix (true, predicted), number of posters); accuracy is NaN when
    no poster qualifies or the vocabulary lacks one of the seven.
    """
    if not set(SEVEN_GENRES) <= set(genres):
        return float("nan"), np.zeros((7, 7), int), 0
    cols = [genres.index(g) for g in SEVEN_GENRES]
    sub_labels = labels[:, cols].astype(bool)
    keep = sub_labels.sum(1) == 1
    truth = sub_labels[keep].argmax(1)
    guess = scores[keep][:, cols].argmax(1)
    confusion = np.zeros((7, 7), int)
    np.add.at(confusion, (truth, guess), 1)
    return (float((truth == guess).mean()) if keep.any() else float("nan")), confusion, int(keep.sum())


def decade_metrics(decade_scores: np.ndarray, years: np.ndarray, decades: list[int]) -> tuple[float, float]:
    """(accuracy of the highest-scored decade, mean absolute error in years from its middle)."""
    predicted = np.asarray(decades)[decade_scores.argmax(1)]
    years = np.asarray(years)
    accuracy = float((predicted == years // 10 * 10).mean())
    mae = float(np.abs(predicted + 4.5 - years).mean())
    return accuracy, mae


def summary(genre_scores, genre_labels, decade_scores, years, genres, decades, thresholds) -> dict:
    """Every figure of the evaluation contract for one model on one set of posters."""
    ap = per_class_ap(genre_scores, genre_labels)
    macro_f1, micro_f1 = f1_scores(genre_scores >= thresholds, genre_labels)
    acc7, _, n7 = seven_genre_accuracy(genre_scores, genre_labels, genres)
    decade_acc, decade_mae = decade_metrics(decade_scores, years, decades)
    return {
        "macro_map": float(np.nanmean(ap)), "micro_map": micro_map(genre_scores, genre_labels),
        "top3_hit": top3_hit(genre_scores, genre_labels), "acc7": acc7, "n_acc7": n7,
        "macro_f1": macro_f1, "micro_f1": micro_f1, "decade_acc": decade_acc, "decade_mae_years": decade_mae,
        "per_genre_ap": {g: (None if np.isnan(a) else float(a)) for g, a in zip(genres, ap)},
        "n_posters": int(len(genre_labels)),
    }


def ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    values = np.asarray(values, np.float64)
    order = np.argsort(values, kind="stable")
    s = values[order]
    starts = np.r_[0, np.flatnonzero(s[1:] != s[:-1]) + 1]
    ends = np.r_[starts[1:], len(s)]
    out = np.empty(len(s))
    out[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation; NaN where either side is constant."""
    ra, rb = ranks(a) - (len(a) + 1) / 2, ranks(b) - (len(b) + 1) / 2
    denominator = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
    return float((ra * rb).sum() / denominator) if denominator > 0 else float("nan")


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a positive outscores a negative, ties counting half."""
    positive = np.asarray(positive, bool)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    if not n_pos or not n_neg:
        return float("nan")
    return float((ranks(scores)[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def tune_rating_threshold(predicted: np.ndarray, ratings: np.ndarray, median: float) -> float:
    """The predicted rating at or above which calling a poster well rated (rating >= median) is most
    often right, over the posters that have a rating."""
    known = ~np.isnan(ratings)
    predicted, well = np.asarray(predicted, np.float64)[known], ratings[known] >= median
    candidates = np.unique(predicted)
    if not len(candidates):
        return float(median)
    correct = [((predicted >= t) == well).sum() for t in candidates]
    return float(candidates[int(np.argmax(correct))])


def rating_metrics(predicted: np.ndarray, ratings: np.ndarray, median: float, threshold: float) -> dict:
    """How well predicted ratings match the posters' ratings, over the posters that have one (NaN: none):
    n, mae, spearman, well_rated_acc (a rating >= median called well rated by predicted >= threshold), auc."""
    known = ~np.isnan(ratings)
    predicted, ratings = np.asarray(predicted, np.float64)[known], ratings[known]
    if not len(ratings):
        return {"n": 0, "mae": None, "spearman": None, "well_rated_acc": None, "auc": None}
    well = ratings >= median

    def number(x):
        return None if np.isnan(x) else float(x)

    return {"n": int(len(ratings)), "mae": float(np.abs(predicted - ratings).mean()),
            "spearman": number(spearman(predicted, ratings)),
            "well_rated_acc": float(((predicted >= threshold) == well).mean()),
            "auc": number(roc_auc(predicted, well))}
