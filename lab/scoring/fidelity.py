"""FID, KID and precision/recall between two sets of features (see `features.image_features`).

Features are extracted once per image set, then `frechet_distance`, torch-fidelity's KID and
`precision_recall` compare any subsets of them (one condition, or all), so scoring many conditions
costs one pass over the images.
"""

from __future__ import annotations

import numpy as np
import torch
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

MIN_IMAGES = 2  # a covariance needs two images; the figures are noisy far above that
# Precision/recall (Kynkäänniemi et al. 2019) with the paper's k = 3 nearest neighbours. A set's k-NN
# balls are only a picture of it with enough points: on real Horror 2000s posters against other real
# ones (bench/precision_recall.py), 4 vs 4 give precision 0.97 and recall 0.82 +- 0.23, 20 vs 20 give
# 0.71 and 0.75 +- 0.10, 100 vs 100 0.54 and 0.68. Below MIN_PRC_IMAGES of either set: no figure.
PRC_NEIGHBOURS = 3
MIN_PRC_IMAGES = 20


def fidelity(fake: torch.Tensor, real: torch.Tensor, seed: int = 0) -> dict:
    """FID, KID (mean and std over subsets) and precision/recall between two feature sets.

    None where a set is too small for the metric (see `missing_note`).
    """
    out = {"fid": None, "kid": None, "kid_std": None, "precision": None, "recall": None}
    if min(len(fake), len(real)) < MIN_IMAGES:
        return out
    out["fid"] = frechet_distance(fake, real)
    kid = kid_features_to_metric(fake, real, kid_subsets=100, kid_subset_size=min(1000, len(fake), len(real)),
                                 rng_seed=seed, verbose=False)
    out["kid"], out["kid_std"] = float(kid[KEY_METRIC_KID_MEAN]), float(kid[KEY_METRIC_KID_STD])
    if min(len(fake), len(real)) >= MIN_PRC_IMAGES:
        out["precision"], out["recall"] = precision_recall(fake, real)
    return out


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """FID's formula, |mu_a - mu_b|^2 + tr S_a + tr S_b - 2 tr sqrt(S_a S_b), as torch-fidelity computes it,
    but with the last trace taken from a symmetric matrix no larger than the smaller set.

    torch-fidelity takes the general eigenvalues of the d x d product (2048 x 2048 for Inception), seconds
    per call, and a condition of 32 samples is scored many times. With X the smaller set's centred features
    over sqrt(n - 1), S_a = X^T X, and S_a S_b has the eigenvalues of X S_b X^T (n x n, symmetric) besides
    zeros. A set larger than d is first factored as S_a = F^T F through its own eigendecomposition.
    """
    a, b = (x.detach().double().cpu().numpy() for x in (a, b))  # features may come from a GPU
    if len(a) > len(b):  # the distance is symmetric: factor the smaller set
        a, b = b, a
    diff = a.mean(0) - b.mean(0)
    x = (a - a.mean(0)) / np.sqrt(len(a) - 1)
    if len(a) > a.shape[1]:
        w, v = np.linalg.eigh(x.T @ x)
        x = (v * np.sqrt(w.clip(0))).T
    sigma_b = np.cov(b, rowvar=False)
    tr_covmean = np.sqrt(np.linalg.eigvalsh(x @ sigma_b @ x.T).clip(0)).sum()
    return float(diff @ diff + (x * x).sum() + np.trace(sigma_b) - 2 * tr_covmean)


def missing_note(entries: list[dict]) -> str:
    """Why a score table shows '-' where one of these entries (as `fidelity` returns) lacks a figure; ''
    where none does."""
    if all(e[key] is not None for e in entries for key in ("fid", "precision")):
        return ""
    return (f"'-': too few posters for the figure: FID/KID need {MIN_IMAGES} samples and {MIN_IMAGES} real posters, "
            f"precision/recall {MIN_PRC_IMAGES} of each.")


def precision_recall(fake: torch.Tensor, real: torch.Tensor, k: int = PRC_NEIGHBOURS) -> tuple[float, float]:
    """Kynkäänniemi et al. 2019: precision is the share of fakes inside the union of the real
    features' k-NN balls, recall the share of real features inside the union of the fakes' balls.

    Computed here rather than by torch-fidelity's `prc_features_to_metric`, whose arguments swap
    roles between builds of one version: upstream's source says "features_1 is REAL" (its issue #58),
    the 0.4.0 installed here "features_1 is GENERATED", so one call could report recall as precision.
    """
    return _covered(fake, real, _knn_radii(real, k)), _covered(real, fake, _knn_radii(fake, k))


def _knn_radii(x: torch.Tensor, k: int, rows: int = 1024) -> torch.Tensor:
    # kthvalue(k + 1): each point is its own nearest neighbour, at distance 0, and must not count.
    return torch.cat([torch.cdist(part, x).kthvalue(k + 1, dim=1).values for part in x.split(rows)])


def _covered(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, rows: int = 1024) -> float:
    """Share of `points` within `radii` of at least one of `centres`."""
    inside = torch.cat([(torch.cdist(part, centres) <= radii).any(dim=1) for part in points.split(rows)])
    return float(inside.double().mean())
