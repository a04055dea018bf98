"""Feature extractors registered with torch-fidelity, so FID/KID work offline.

torch-fidelity's standard `inception-v3-compat` needs weights these machines cannot download.
Two extractors work offline: the ImageNet MobileNetV2 (torchvision weights under TORCH_HOME), and
the penultimate layer of a trained poster classifier run (its folder is the "weights path").
Their figures are not Inception FIDs, so every figure carries the extractor's name.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
import torch_fidelity
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from lab.data.cache import cache_root
from lab.errors import LabError

log = logging.getLogger(__name__)
INCEPTION = "inception-v3-compat"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # what torch-fidelity downloads
MOBILENET = "mobilenet_v2"
CLASSIFIER = "classifier"
EXTRACTORS = (INCEPTION, MOBILENET, CLASSIFIER)
FEATURE = "pool"


class _PooledFeatures(FeatureExtractorBase):
    """uint8 (B, 3, H, W) -> one pooled feature vector per image."""

    size: tuple[int, int]  # (W, H) images are resized to

    @staticmethod
    def get_provided_features_list():
        return (FEATURE,)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return FEATURE

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 96, 64, dtype=torch.uint8)

    def forward(self, x):
        x = F.interpolate(x.float(), size=(self.size[1], self.size[0]), mode="bilinear", antialias=True,
                          align_corners=False)
        return (self.pooled(x.clamp(0, 255)).float(),)


class MobileNetV2Features(_PooledFeatures):
    """ImageNet MobileNetV2's 1280 pooled features at 224x224, as torch-fidelity resizes for its own nets."""

    size = (224, 224)

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        from lab.classifier.model import GenreClassifier
        self.net = GenreClassifier(MOBILENET, 1, 1, "IMAGENET1K_V1")  # heads unused: features only

    def pooled(self, x):
        return self.net.features(x)


class ClassifierFeatures(_PooledFeatures):
    """A trained poster classifier's penultimate features, at the size it was trained on."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        from lab.classifier.inference import load_model, load_run_info
        if feature_extractor_weights_path is None:
            raise LabError("the classifier extractor needs a classifier run folder")
        info = load_run_info(Path(feature_extractor_weights_path))
        self.net = load_model(Path(feature_extractor_weights_path), info)
        self.size = tuple(info["size"])

    def pooled(self, x):
        return self.net.features(x)


def register_extractors() -> None:
    for name, cls in ((MOBILENET, MobileNetV2Features), (CLASSIFIER, ClassifierFeatures)):
        if name not in FEATURE_EXTRACTORS_REGISTRY:
            torch_fidelity.register_feature_extractor(name, cls)


def inception_weights(path: Path | None) -> Path | None:
    """The Inception weights file: `path`, else torch-fidelity's own download in the torch hub cache, else
    one downloaded into the lab's cache now if this machine can; None where none of that works."""
    if path is not None:
        if not Path(path).is_file():
            raise LabError(f"--inception-weights {path}: no such file; use --extractor {MOBILENET} or "
                           f"--extractor {CLASSIFIER}, which work offline")
        return Path(path)
    for known in (Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE, cache_root() / INCEPTION_FILE):
        if known.is_file():
            return known
    target = cache_root() / INCEPTION_FILE
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.redirect_stderr(io.StringIO()):  # torch.hub announces even a failing download
            torch.hub.download_url_to_file(URL_INCEPTION_V3, str(target), progress=False)
    except Exception:  # offline, blocked or interrupted: all mean "not available here"
        return None
    return target


def choose_extractor(name: str, weights: Path | None, classifier_run: Path) -> tuple[str, str | None]:
    """(extractor, weights path for torch-fidelity). 'auto' is Inception where its weights can be had."""
    if name not in (*EXTRACTORS, "auto"):
        raise LabError(f"unknown extractor {name!r}; choose one of {', '.join(EXTRACTORS)}")
    if name in (INCEPTION, "auto"):
        found = inception_weights(weights)
        if found is not None:
            return INCEPTION, str(found)
        if name == INCEPTION:
            raise LabError(f"{INCEPTION} needs torch-fidelity's Inception weights ({INCEPTION_FILE}), which are "
                           f"not on this machine and cannot be downloaded here; give --inception-weights PATH, "
                           f"or use --extractor {MOBILENET} or --extractor {CLASSIFIER}, which work offline")
        log.warning("Inception weights unavailable here: FID/KID use %s features", MOBILENET)
        return MOBILENET, None
    return name, str(classifier_run) if name == CLASSIFIER else None
