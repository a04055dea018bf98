"""`image_features`: what a feature extractor makes of a set of posters, computed once per set.

Real posters are scored again and again (every sample folder of a run is compared with the same
test split, and memorisation reads the whole training split), so their features are kept in the
lab cache, keyed by the images' bytes, the extractor and the identity of its weights. A sample set
is new each time and is not cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

from lab.checkpoint import write_atomic
from lab.data.cache import cache_root
from lab.errors import LabError
from lab.kinds import get
from lab.scoring.extractors import FEATURE, INCEPTION, STANDARD_FID, register_extractors
from lab.training import inference_precision, resolve_precision

log = logging.getLogger(__name__)
FEATURES_FOLDER = "features"
# Images per forward pass: a CPU runs these networks faster on small batches (RESULTS.md, "lab demo under
# 15 minutes").
FEATURE_BATCH = 16


class _Images(Dataset):
    """uint8 (N, H, W, 3) as the uint8 (3, H, W) tensors torch-fidelity reads."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, k):
        return torch.from_numpy(np.ascontiguousarray(self.images[k])).permute(2, 0, 1)


def image_features(images: np.ndarray, extractor: str, weights_path: str | None = None, *, cache: bool = False,
                   batch_size: int = FEATURE_BATCH) -> torch.Tensor:
    """(N, F) float64 features of uint8 (N, H, W, 3) images by a torch-fidelity extractor; with `cache`,
    read from (or written to) the lab cache."""
    path = _cache_path(images, extractor, weights_path) if cache else None
    if path is not None and path.is_file():
        try:
            return torch.from_numpy(np.load(path, allow_pickle=False))
        except (OSError, ValueError):
            log.warning("cached features %s are damaged; computing them again", path)
    features = _extract(images, extractor, weights_path, batch_size)
    if path is not None:
        buffer = io.BytesIO()
        np.save(buffer, features.numpy(), allow_pickle=False)
        try:
            write_atomic(path, buffer.getvalue())
        except LabError as e:  # a cache that cannot be written costs time, not the result
            log.warning("%s", e)
    return features


def _extract(images: np.ndarray, extractor: str, weights_path: str | None, batch_size: int) -> torch.Tensor:
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
    if not len(images):
        return torch.zeros(0, 1, dtype=torch.float64)
    precision = inference_precision(torch.device("cuda" if cuda else "cpu")) if extractor not in STANDARD_FID \
        else contextlib.nullcontext()
    with precision:
        features = get_featuresdict_from_dataset(_Images(images), net, batch_size, cuda, save_cpu_ram=True,
                                                 verbose=False)
    return features[layer].double().cpu()


def _cache_path(images: np.ndarray, extractor: str, weights_path: str | None) -> Path:
    digest = hashlib.sha256()
    precision = "fp32" if extractor in STANDARD_FID else resolve_precision()
    digest.update(f"{extractor}\0{images.shape}\0{precision}\0".encode())
    if weights_path is not None:
        weights = Path(weights_path)
        # A classifier run is identified by its run file; a weights file by itself.
        marker = weights / get("classifier").run_file if weights.is_dir() else weights
        st = marker.stat()
        digest.update(f"{marker.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    for start in range(0, len(images), 1024):
        digest.update(np.ascontiguousarray(images[start:start + 1024]).tobytes())
    return cache_root() / FEATURES_FOLDER / f"{digest.hexdigest()[:32]}.npy"
