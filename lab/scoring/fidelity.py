"""FID, KID and precision/recall of generated posters against real ones, computed by torch-fidelity.

Features are extracted once per image set, then torch-fidelity's metric functions compare any
subsets of them (one condition, or all), so scoring many conditions costs one pass over the images.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric
from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric
from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

from lab.errors import LabError
from lab.scoring.extractors import FEATURE, INCEPTION, register_extractors

MIN_IMAGES = 2  # a covariance needs two images; the figures are noisy far above that
PRC_NEIGHBOURS = 3


class _Images(Dataset):
    """uint8 (N, H, W, 3) as the uint8 (3, H, W) tensors torch-fidelity reads."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, k):
        return torch.from_numpy(np.ascontiguousarray(self.images[k])).permute(2, 0, 1)


def image_features(images: np.ndarray, extractor: str, weights_path: str | None = None,
                   batch_size: int = 64) -> torch.Tensor:
    """(N, F) features of uint8 (N, H, W, 3) images by a torch-fidelity feature extractor."""
    register_extractors()
    cuda = torch.cuda.is_available()
    layer = "2048" if extractor == INCEPTION else FEATURE
    try:
        net = create_feature_extractor(extractor, [layer], cuda=cuda, verbose=False,
                                       feature_extractor_weights_path=weights_path)
    except LabError:
        raise
    except Exception as e:  # torch-fidelity fails in many ways on a missing or bad weights file
        raise LabError(f"cannot build the {extractor} feature extractor: {str(e).splitlines()[0]}") from None
    features = get_featuresdict_from_dataset(_Images(images), net, batch_size, cuda, save_cpu_ram=True,
                                             verbose=False)
    return features[layer].double()


def fidelity(fake: torch.Tensor, real: torch.Tensor, seed: int = 0) -> dict:
    """FID, KID (mean and std over subsets) and precision/recall between two feature sets.

    None where a set is too small for the metric.
    """
    out = {"fid": None, "kid": None, "kid_std": None, "precision": None, "recall": None}
    if min(len(fake), len(real)) < MIN_IMAGES:
        return out
    stats = [fid_features_to_statistics(f) for f in (fake, real)]
    out["fid"] = float(fid_statistics_to_metric(*stats, verbose=False)[KEY_METRIC_FID])
    kid = kid_features_to_metric(fake, real, kid_subsets=100, kid_subset_size=min(1000, len(fake), len(real)),
                                 rng_seed=seed, verbose=False)
    out["kid"], out["kid_std"] = float(kid[KEY_METRIC_KID_MEAN]), float(kid[KEY_METRIC_KID_STD])
    if min(len(fake), len(real)) > PRC_NEIGHBOURS:
        prc = prc_features_to_metric(fake.float(), real.float(), prc_neighborhood=PRC_NEIGHBOURS, verbose=False,
                                     save_cpu_ram=True)
        out["precision"], out["recall"] = float(prc[KEY_METRIC_PRECISION]), float(prc[KEY_METRIC_RECALL])
    return out
