"""The linear-probe baseline: logistic regression on frozen ImageNet features.

(The genre-prior baseline is the training frequencies, kept in classifier.json; the from-scratch
CNN baseline trains through the same loop as the classifier.)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from lab.checkpoint import save_weights
from lab.classifier.metrics import macro_map, tune_thresholds
from lab.classifier.model import GenreClassifier, genre_loss
from lab.data.poster_dataset import batch_loader

PROBE_FILE = "baselines/linear_probe.safetensors"
WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2)  # chosen on validation, as an honest probe is


@torch.no_grad()
def extract_features(model: GenreClassifier, dataset, batch_size: int, device, progress: bool = False) -> torch.Tensor:
    """Features of every poster, on `device`."""
    model.eval()
    out = []
    for images, _, _ in tqdm(batch_loader(dataset, batch_size), desc="frozen features", unit="batch",
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


def train_linear_probe(posters, opts, run, accelerator, pos_weight: torch.Tensor, progress: bool) -> dict:
    model = GenreClassifier(opts.backbone, len(posters.genres), len(posters.decades), opts.weights, dropout=0.0)
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
    if accelerator.is_main_process:
        save_weights(model, run.path / PROBE_FILE)
    return {"file": PROBE_FILE, "val_macro_map": score, "weight_decay": wd, "backbone": opts.backbone,
            "weights": opts.weights, "thresholds": tune_thresholds(val_scores, genres["val"].cpu().numpy()).tolist()}


def prior_scores(info: dict, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The genre-prior baseline: every poster gets the training frequencies."""
    return (np.tile(np.asarray(info["prior"]["genres"]), (n, 1)),
            np.tile(np.asarray(info["prior"]["decades"]), (n, 1)))
