"""The linear-probe baseline: logistic regression (and, for the rating, ridge regressions) on frozen
ImageNet features; the rating's label-only baseline, a ridge regression on genres and decade; and the
closed-form rating head fit that the probe and the fine-tuned classifier share.

(The genre-prior and mean-rating baselines are training figures kept in classifier.json; the
from-scratch CNN baseline trains through the same loop as the classifier.)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from lab.checkpoint import save_weights
from lab.classifier.metrics import macro_map, spearman, tune_rating_threshold, tune_thresholds
from lab.classifier.model import INFERENCE_BATCH, GenreClassifier, genre_loss, label_vector
from lab.data.poster_dataset import batch_loader
from lab.training import inference_precision

PROBE_FILE = "baselines/linear_probe.safetensors"
WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2)  # chosen on validation, as an honest probe is
RIDGE_ALPHAS = (1e2, 1e3, 1e4, 1e5)  # on standardised frozen features
LABEL_RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0)  # on 0/1 genres and decades
HUBER_ITERATIONS = 6  # of reweighted least squares: the weights settle within a few


@torch.no_grad()
def extract_features(model: GenreClassifier, dataset, batch_size: int, device, progress: bool = False) -> torch.Tensor:
    """Features of every poster, on `device`."""
    model.eval()
    out = []
    for images, *_ in tqdm(batch_loader(dataset, batch_size), desc="extracting features", unit="batch",
                             disable=not progress, leave=False):
        with inference_precision(torch.device(device)):
            out.append(model.features(images.to(device, non_blocking=True)).float())
    return torch.cat(out)


def fit_linear_heads(features: torch.Tensor, genres: torch.Tensor, decades: torch.Tensor, n_decades: int,
                     weight_decay: float, pos_weight: torch.Tensor, steps: int = 300):
    """Full-batch logistic regression for genres (sigmoid) and decade (softmax), on the features' device."""
    torch.manual_seed(0)
    genre_head = torch.nn.Linear(features.shape[1], genres.shape[1]).to(features.device)
    decade_head = torch.nn.Linear(features.shape[1], n_decades).to(features.device)
    params = list(genre_head.parameters()) + list(decade_head.parameters())
    opt = torch.optim.Adam(params, lr=1e-2, weight_decay=weight_decay)
    for _ in range(steps):
        opt.zero_grad()
        loss = (genre_loss(genre_head(features), genres, pos_weight)
                + F.cross_entropy(decade_head(features), decades))
        loss.backward()
        opt.step()
    return genre_head, decade_head


def train_linear_probe(model: GenreClassifier, posters, opts, run, accelerator, pos_weight: torch.Tensor,
                       progress: bool, median: float | None = None) -> dict:
    """Fit `model`'s heads (it has frozen ImageNet weights) on its frozen features; save it; return its entry."""
    model.to(accelerator.device)
    feats = {p: extract_features(model, posters.dataset(p), INFERENCE_BATCH, accelerator.device, progress)
             for p in ("train", "val")}
    device = accelerator.device
    genres = {p: torch.from_numpy(posters.genre_matrix[posters.parts[p]]).to(device) for p in ("train", "val")}
    decades = torch.from_numpy(posters.decade_index[posters.parts["train"]]).to(device)
    pos_weight = pos_weight.to(device)
    best = None
    for wd in WEIGHT_DECAYS:
        genre_head, decade_head = fit_linear_heads(feats["train"], genres["train"], decades, len(posters.decades),
                                                   wd, pos_weight)
        with torch.no_grad():
            val_scores = torch.sigmoid(genre_head(feats["val"])).cpu().numpy()
        score = macro_map(val_scores, genres["val"].cpu().numpy())
        if best is None or score > best[0]:
            best = (score, wd, genre_head, decade_head, val_scores)
    score, wd, genre_head, decade_head, val_scores = best
    model.genre_head.load_state_dict(genre_head.state_dict())
    model.decade_head.load_state_dict(decade_head.state_dict())
    entry = {"file": PROBE_FILE, "val_macro_map": score, "weight_decay": wd, "backbone": opts.backbone,
             "weights": opts.weights, "thresholds": tune_thresholds(val_scores, genres["val"].cpu().numpy()).tolist()}
    if model.rating_head is not None:
        entry.update(fit_rating_head(model, feats, posters, opts, median))
    if accelerator.is_main_process:
        save_weights(model, run.path / PROBE_FILE)
    return entry


def ridge(x: np.ndarray, y: np.ndarray, alpha: float, huber: float | None = None) -> tuple[np.ndarray, float]:
    """Ridge regression with an unpenalised intercept: (weights, bias). With `huber` (in y's units), Huber's
    loss replaces the squares, by iteratively reweighted least squares: films rated far from what their
    posters suggest weigh less."""
    weight = np.ones(len(y))  # every film counts fully in the first solve, the plain ridge
    for _ in range(HUBER_ITERATIONS if huber is not None else 1):
        centre, y_centre = weight @ x / weight.sum(), weight @ y / weight.sum()
        xc = x - centre
        w = np.linalg.solve(xc.T @ (xc * weight[:, None]) + alpha * np.eye(x.shape[1]), xc.T @ (weight * (y - y_centre)))
        bias = float(y_centre - centre @ w)
        if huber is not None:
            weight = np.minimum(1.0, huber / np.maximum(np.abs(y - x @ w - bias), 1e-12))
    return w, bias


def _best_ridge(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, truth: np.ndarray, offset_val: np.ndarray | float = 0.0,
                alphas=RIDGE_ALPHAS, huber: float | None = None) -> tuple[np.ndarray, float, float]:
    """The ridge whose strength gives the best validation Spearman of offset_val + its prediction:
    (weights, bias, alpha). `truth` is NaN where a validation poster has no rating."""
    known = ~np.isnan(truth)
    fits = [(alpha, *ridge(x, y, alpha, huber)) for alpha in alphas]
    alpha, w, b = max(fits, key=lambda f: spearman((offset_val + x_val @ f[1] + f[2])[known], truth[known]))
    return w, b, alpha


def fit_rating_head(model: GenreClassifier, feats: dict, posters, opts, median: float, robust: bool = False) -> dict:
    """`model`'s rating head in closed form, on its standardised features `feats` (train, val). Poster alone:
    a ridge on the features. Told the labels: the genre+decade regression (where the head's label weights
    start), plus a ridge of the features on what that regression leaves over. Strengths chosen on
    validation. `robust`: Huber's loss (delta: one standard deviation of the ratings) instead of squares."""
    head = model.rating_head
    mean, std = (float(v) for v in head.scale)
    huber = std if robust else None
    x = {p: f.double().cpu().numpy() for p, f in feats.items()}
    centre, spread = x["train"].mean(0), x["train"].std(0) + 1e-6
    z = {p: (v - centre) / spread for p, v in x.items()}
    with torch.no_grad():  # what the labels alone say, in ratings
        by_labels = {p: mean + std * head.labels(_all_labels(posters, p).to(head.scale.device)).double().cpu().numpy()[:, 0]
                     for p in ("train", "val")}
    y = posters.rating_targets(opts.rating_min_votes)[posters.parts["train"]].astype(np.float64)
    keep = ~np.isnan(y)
    truth = posters.ratings[posters.parts["val"]]
    alone, alone_bias, alpha = _best_ridge(z["train"][keep], y[keep], z["val"], truth, huber=huber)
    left, left_bias, alpha_left = _best_ridge(z["train"][keep], (y - by_labels["train"])[keep], z["val"], truth,
                                              by_labels["val"], huber=huber)

    def as_linear(w: np.ndarray, b: float, offset: float) -> tuple[torch.Tensor, torch.Tensor]:
        """A ridge on standardised features as a linear layer on raw features, in standardised ratings."""
        weight = w / spread / std
        return (torch.tensor(weight[None], dtype=torch.float32),
                torch.tensor([(b - centre / spread @ w - offset) / std], dtype=torch.float32))

    with torch.no_grad():
        weight, bias = as_linear(alone, alone_bias, mean)
        head.poster.weight.copy_(weight)
        head.poster.bias.copy_(bias)
        weight_left, bias_left = as_linear(left, left_bias, 0.0)
        head.poster_given_labels.weight.copy_(weight_left - weight)
        head.poster_given_labels.bias.copy_(bias_left - bias)
    val = {"alone": z["val"] @ alone + alone_bias, "given": by_labels["val"] + z["val"] @ left + left_bias}
    return {"rating_ridge": {"alone": alpha, "given": alpha_left},
            "rating_thresholds": {case: tune_rating_threshold(v, truth, median) for case, v in val.items()}}


def _all_labels(posters, part: str) -> torch.Tensor:
    """Every poster of a part told its true genres and decade, as the rating head's input."""
    rows = posters.parts[part]
    ones = torch.ones(len(rows))
    return label_vector(torch.from_numpy(posters.genre_matrix[rows]), torch.from_numpy(posters.decade_index[rows]),
                        len(posters.decades), ones, ones)


def fit_genre_decade(posters, min_votes: int, median: float) -> dict:
    """The rating from the true genres and decade alone, no poster: a ridge regression, its strength
    chosen on validation (Spearman). Returns its coefficients and well-rated threshold."""
    def design(part):
        rows = posters.parts[part]
        return np.hstack([posters.genre_matrix[rows], np.eye(len(posters.decades))[posters.decade_index[rows]]])

    x, y = design("train"), posters.rating_targets(min_votes)[posters.parts["train"]].astype(np.float64)
    truth = posters.ratings[posters.parts["val"]]
    keep = ~np.isnan(y)
    w, bias, alpha = _best_ridge(x[keep], y[keep], design("val"), truth, alphas=LABEL_RIDGE_ALPHAS)
    return {"alpha": alpha, "genres": w[:len(posters.genres)].tolist(), "decades": w[len(posters.genres):].tolist(),
            "bias": bias, "threshold": tune_rating_threshold(design("val") @ w + bias, truth, median)}


def genre_decade_ratings(info: dict, genres: np.ndarray, decades: np.ndarray) -> np.ndarray:
    """The label-only baseline's ratings for multi-hot `genres` (N, G) and decade indices (N,; -1: unknown,
    which gets the decades' mean effect)."""
    fit = info["rating"]["genre_decade"]
    decade_effect = np.asarray(fit["decades"])
    effect = np.where(decades >= 0, decade_effect[np.clip(decades, 0, None)], decade_effect.mean())
    return genres @ np.asarray(fit["genres"]) + effect + fit["bias"]


def prior_scores(info: dict, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The genre-prior baseline: every poster gets the training frequencies."""
    return (np.tile(np.asarray(info["prior"]["genres"]), (n, 1)),
            np.tile(np.asarray(info["prior"]["decades"]), (n, 1)))
