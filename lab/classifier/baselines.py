"""The linear-probe baseline: logistic regression (and, for the rating, the rating head) on frozen
ImageNet features; and the rating's label-only baseline, a ridge regression on genres and decade.

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
from lab.classifier.model import GenreClassifier, RatingHead, genre_loss, label_vector, rating_loss
from lab.data.poster_dataset import batch_loader

PROBE_FILE = "baselines/linear_probe.safetensors"
WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2)  # chosen on validation, as an honest probe is
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0)


@torch.no_grad()
def extract_features(model: GenreClassifier, dataset, batch_size: int, device, progress: bool = False) -> torch.Tensor:
    """Features of every poster, on `device`."""
    model.eval()
    out = []
    for images, *_ in tqdm(batch_loader(dataset, batch_size), desc="frozen features", unit="batch",
                             disable=not progress, leave=False):
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


def fit_rating_head(like: RatingHead, features: torch.Tensor, ratings: torch.Tensor, labels: torch.Tensor,
                    weight_decay: float, steps: int = 300) -> RatingHead:
    """A copy of the rating head `like`, fitted full-batch on frozen features from where it starts, each
    poster seen twice: told nothing, and told its labels."""
    head = RatingHead(features.shape[1], like.n_genres, like.n_decades).to(features.device)
    head.load_state_dict(like.state_dict())
    opt = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=weight_decay)
    for _ in range(steps):
        opt.zero_grad()
        loss = (rating_loss(head(features), ratings, head.scale)
                + rating_loss(head(features, labels), ratings, head.scale))
        loss.backward()
        opt.step()
    return head


def train_linear_probe(model: GenreClassifier, posters, opts, run, accelerator, pos_weight: torch.Tensor,
                       progress: bool, median: float | None = None) -> dict:
    """Fit `model`'s heads (it has frozen ImageNet weights) on its frozen features; save it; return its entry."""
    model.to(accelerator.device)
    feats = {p: extract_features(model, posters.dataset(p), opts.batch_size * 2, accelerator.device, progress)
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
        entry.update(_fit_probe_rating(model, feats, posters, opts, device, median))
    if accelerator.is_main_process:
        save_weights(model, run.path / PROBE_FILE)
    return entry


def _fit_probe_rating(model: GenreClassifier, feats: dict, posters, opts, device, median: float) -> dict:
    """The probe's rating head, its weight decay chosen on validation (Spearman, alone and given labels)."""
    def labels(part):
        rows = posters.parts[part]
        ones = torch.ones(len(rows), device=device)
        return label_vector(torch.from_numpy(posters.genre_matrix[rows]).to(device),
                            torch.from_numpy(posters.decade_index[rows]).to(device), len(posters.decades), ones, ones)

    targets = torch.from_numpy(posters.rating_targets(opts.rating_min_votes)[posters.parts["train"]]).to(device)
    train_labels, val_labels = labels("train"), labels("val")
    truth = posters.ratings[posters.parts["val"]]
    known = ~np.isnan(truth)
    best = None
    for wd in WEIGHT_DECAYS:
        head = fit_rating_head(model.rating_head, feats["train"], targets, train_labels, wd)
        with torch.no_grad():
            val = {"alone": head.to_rating(head(feats["val"])).cpu().numpy(),
                   "given": head.to_rating(head(feats["val"], val_labels)).cpu().numpy()}
        score = np.mean([spearman(v[known], truth[known]) for v in val.values()])
        if best is None or score > best[0]:
            best = (score, wd, head, val)
    score, wd, head, val = best
    model.rating_head.load_state_dict(head.state_dict())
    return {"rating_weight_decay": wd,
            "rating_thresholds": {case: tune_rating_threshold(v, truth, median) for case, v in val.items()}}


def fit_genre_decade(posters, min_votes: int, median: float) -> dict:
    """The rating from the true genres and decade alone, no poster: a ridge regression, its strength
    chosen on validation (Spearman). Returns its coefficients and well-rated threshold."""
    def design(part):
        rows = posters.parts[part]
        return np.hstack([posters.genre_matrix[rows], np.eye(len(posters.decades))[posters.decade_index[rows]]])

    x, y = design("train"), posters.rating_targets(min_votes)[posters.parts["train"]].astype(np.float64)
    x, y = x[~np.isnan(y)], y[~np.isnan(y)]
    x_val, truth = design("val"), posters.ratings[posters.parts["val"]]
    known = ~np.isnan(truth)
    best = None
    for alpha in RIDGE_ALPHAS:
        centre = x.mean(0)
        w = np.linalg.solve((x - centre).T @ (x - centre) + alpha * np.eye(x.shape[1]), (x - centre).T @ (y - y.mean()))
        bias = y.mean() - centre @ w
        score = spearman(x_val[known] @ w + bias, truth[known])
        if best is None or score > best[0]:
            best = (score, alpha, w, bias)
    _, alpha, w, bias = best
    return {"alpha": alpha, "genres": w[:len(posters.genres)].tolist(), "decades": w[len(posters.genres):].tolist(),
            "bias": float(bias), "threshold": tune_rating_threshold(x_val @ w + bias, truth, median)}


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
