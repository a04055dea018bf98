"""The classifier's options (recipe keys and flags) and its run folder's name. Light: the CLI reads it for
its help."""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.errors import LabError
from lab.options import DataOptions


GENRE_LOSSES = ("weighted_bce", "asymmetric")


@dataclass
class ClassifierOptions(DataOptions):
    """`weights` names torchvision weights; "none" (or --no-pretrained) trains the backbone from scratch."""

    size: str = "128x192"
    backbone: str = "mobilenet_v2"
    weights: str | None = "IMAGENET1K_V1"
    # [epochs, share of backbone blocks trained, from the top]: heads first, then unfreeze progressively.
    schedule: list = field(default_factory=lambda: [[2, 0.0], [2, 0.3], [4, 1.0]])
    taps: list = field(default_factory=list)  # backbone blocks whose pooled outputs join the head's input
    # Frozen networks whose features of each poster join them too (lab.classifier.extra_features): ["inception"].
    extra_features: list = field(default_factory=list)
    # Chance that each of them is dropped in training: they are the same every epoch for a poster (computed
    # once, unaugmented), so without it the heads can learn the training posters from them alone.
    extra_dropout: float = 0.0
    # Chance that a training poster is mirrored left to right, beside the crop, rotation and jitter all get.
    flip: float = 0.0
    ema: float = 0.0  # decay of the weights' moving average that is evaluated and kept; 0: none
    batch_size: int = 64  # over all processes
    grad_accum: int = 1
    lr: float = 1e-3  # heads
    backbone_lr: float = 2e-4
    weight_decay: float = 1e-4
    warmup: float = 0.03  # share of all steps
    decade_weight: float = 0.5
    rating_weight: float = 0.5  # of the rating head's loss, where it trains in the loop; 0: no rating head
    # Whether the rating head trains in the loop with the backbone, its Huber loss weighted by
    # rating_weight. By default it does not: the loop trains genres and decade alone, and the rating head
    # is then fitted to the kept weights' features in closed form (Huber ridge, strength chosen on
    # validation), so it cannot cost them anything (RESULTS.md has what training it in the loop cost).
    rating_trains_features: bool = False
    rating_min_votes: int = 10  # a rating backed by fewer votes is left out of the rating's fit
    label_dropout: float = 0.5  # chance that the rating head is not told a poster's genres (and, apart, its decade)
    max_pos_weight: float = 10.0
    # The genre loss: weighted_bce (rare genres' positives weighted up, probabilities kept calibrated) or
    # asymmetric (Ridnik et al. 2021; no positive weights).
    genre_loss: str = "weighted_bce"
    patience: int = 3  # epochs without a better validation mAP before stopping
    baselines: bool = True
    checkpoint_every: int = 200  # batches
    mixed_precision: str = "auto"  # lab.training.resolve_precision
    workers: int | None = None  # loader processes; None: what the machine has (lab.training.default_workers)
    seed: int = 0
    split_seed: int = 0

    @property
    def epochs(self) -> int:
        return int(sum(e for e, _ in self.schedule))

    def __post_init__(self):
        if isinstance(self.weights, str) and self.weights.lower() in ("", "none"):
            self.weights = None

    def validate(self) -> None:
        from lab.classifier.extra_features import check_extra_features
        from lab.classifier.model import check_backbone
        from lab.data.images import parse_size
        parse_size(self.size)
        if not self.schedule or not all(isinstance(stage, list) and len(stage) == 2 and isinstance(stage[0], int)
                                        and stage[0] >= 0 and isinstance(stage[1], (int, float))
                                        and 0 <= stage[1] <= 1 for stage in self.schedule) or not self.epochs:
            raise LabError(f"schedule must be [[epochs, share of backbone trained 0-1], ...] with at least one "
                           f"epoch, not {self.schedule}")
        for name in ("batch_size", "grad_accum", "patience", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise LabError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in ("lr", "backbone_lr"):
            if not getattr(self, name) > 0:
                raise LabError(f"{name} must be above 0, not {getattr(self, name)}")
        for name in ("ema", "label_dropout", "warmup", "extra_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise LabError(f"{name} must be at least 0 and below 1, not {getattr(self, name)}")
        if not 0 <= self.flip <= 1:
            raise LabError(f"flip must be a chance from 0 to 1, not {self.flip}")
        if self.workers is not None and self.workers < 0:
            raise LabError(f"workers must be 0 or more, not {self.workers}")
        if self.genre_loss not in GENRE_LOSSES:
            raise LabError(f"genre_loss must be one of {', '.join(GENRE_LOSSES)}, not {self.genre_loss!r}")
        check_backbone(self.backbone, self.weights)
        if not isinstance(self.extra_features, list):
            raise LabError(f"extra_features must be a list such as [\"inception\"], not {self.extra_features!r}")
        check_extra_features(self.extra_features)

    def trained_share(self, epoch: int) -> float:
        for epochs, share in self.schedule:
            if epoch < epochs:
                return float(share)
            epoch -= epochs
        return float(self.schedule[-1][1])


def folder_name(opts: ClassifierOptions) -> str:
    return "classifier"


@dataclass
class EnsembleOptions:
    """An ensemble run (`lab ensemble`): classifier runs read together, what each adds chosen on validation."""

    members: list = field(default_factory=list)  # classifier run folders, all trained on the same split
    # Test-time views (lab.classifier.views) each member may read posters with; every combination is tried
    # on validation and one is kept only where it adds min_gain.
    views: list = field(default_factory=lambda: ["flip", "crops"])
    # Sizes (WxH) each member may also be tested at beside its own, kept the same way (FixRes: a network
    # trained at one resolution often reads a somewhat higher one better).
    test_sizes: list = field(default_factory=list)
    min_gain: float = 0.002  # validation macro mAP a view or a size must add to be kept
    mixed_precision: str = "auto"  # lab.training.resolve_precision
    data: str = ""  # the members' dataset, taken from the first member's options where not given

    def __post_init__(self):
        if self.members and not self.data:
            from lab.runs import Run
            self.data = Run.open(self.members[0]).options.get("data", "")

    def validate(self) -> None:
        import json
        from pathlib import Path

        from lab.classifier.views import check_views
        from lab.data.images import parse_size
        from lab.data.split import PARTS
        from lab.kinds import kind_of
        if not self.members:
            raise LabError("an ensemble needs at least one classifier run")
        check_views(self.views)
        for size in self.test_sizes:
            parse_size(size)
        if self.min_gain < 0:
            raise LabError(f"min_gain must be 0 or more, not {self.min_gain}")
        first = None
        for member in map(Path, self.members):
            kind = kind_of(member)
            if kind.name != "classifier":
                raise LabError(f"{member} is a {kind.title} run: an ensemble's members are classifier runs")
            if not (member / kind.run_file).is_file():
                raise LabError(f"{member} has not finished training (no {kind.run_file})")
            info = json.loads((member / kind.run_file).read_text())
            # The split's posters, not the dataset's fingerprint: that also holds the files' times, which
            # change when the same posters are copied or mounted again.
            split = json.loads((member / "split.json").read_text()) if (member / "split.json").is_file() else {}
            here = (info["genres"], info["decades"], {p: split.get(p) for p in PARTS})
            if first is None:
                first = (member, here)
            elif here != first[1]:
                raise LabError(f"{member} was trained on another split, dataset or set of labels than {first[0]}: "
                               "an ensemble is fitted on validation posters that none of its members trained on")


def ensemble_folder_name(opts: EnsembleOptions) -> str:
    return "ensemble"
