"""`Steerer`: a classifier run that steers generated posters toward what they were asked to be.

Three levers, each judged by another classifier (`lab score-samples --judge`), since one that steered a folder
rates its own work:

- Best of N (`lab sample --steer RUN --select-of N`): every poster is drawn N times, from N noises, and the
  draw the steerer finds most likely for its genres and decade is kept. It changes no weight and cannot make
  a poster the generator could not, so it is the honest baseline that the other levers must beat.
- Classifier guidance (`--steer-scale S`, diffusion runs): at every sampling step the predicted clean poster
  is moved up the gradient of the steerer's log p(genres, decade), read through a random crop, shift and
  blur so that the move is one that survives them, not a pixel pattern only this network reads. The
  gradient goes through the classifier alone, never the denoiser (`Steerer.guide`).
- A steering loss in a generator's training (the GAN's `steer`, `SteeringLoss`): the frozen classifier's
  genre and decade loss on the generator's posters, seen through the same random crop, shift and blur.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lab.classifier.augment import augment_posters
from lab.classifier.inference import classify_images, load_model, load_run_info
from lab.classifier.model import GenreClassifier
from lab.classifier.views import resized
from lab.errors import LabError
from lab.generation.condition import Condition

MAX_SELECT_OF = 64
MAX_STEER_SCALE = 10.0
_FLOOR = 1e-6  # keeps log p finite for a probability the classifier rounds to 0
COARSE = 4  # classifier guidance moves blocks of this many pixels a side (`_coarse`)
MIN_BLUR, MAX_BLUR = 0.5, 1.5  # the blur's standard deviation, in the generated poster's pixels

# (clean posters in [-1, 1] (B, 3, H, W)) -> the step to add to them
Guide = Callable[[torch.Tensor], torch.Tensor]


class Steerer:
    """A classifier run's model, loaded once, scoring posters for their conditions and steering them."""

    def __init__(self, run_dir: Path, select_of: int = 1, scale: float = 0.0):
        if select_of != 1 and not 2 <= select_of <= MAX_SELECT_OF:
            raise LabError(f"--select-of must be 2 to {MAX_SELECT_OF} draws per poster, not {select_of}")
        if not (math.isfinite(scale) and 0 <= scale <= MAX_STEER_SCALE):
            raise LabError(f"--steer-scale must be between 0 and {MAX_STEER_SCALE:g}, not {scale}")
        if select_of == 1 and scale == 0:
            raise LabError("--steer needs a lever: --select-of N (best of N draws) and/or --steer-scale S "
                           "(classifier guidance, diffusion runs)")
        self.run_dir, self.select_of, self.scale = Path(run_dir), select_of, scale
        self.info = load_run_info(self.run_dir)
        self.model = load_model(self.run_dir, self.info)
        if scale and not isinstance(self.model, GenreClassifier):
            raise LabError(f"--steer-scale needs one classifier to take gradients through; {self.run_dir} is an "
                           "ensemble (use a member, or --select-of)")

    def check(self, conditions: list[Condition]) -> None:
        """A one-line LabError for a condition the classifier cannot read."""
        for c in conditions:
            unknown = [g for g in c.genres if g not in self.info["genres"]]
            if unknown or c.decade not in self.info["decades"]:
                raise LabError(f"--steer {self.run_dir} cannot read {c.label()}: it knows genres "
                               f"{', '.join(self.info['genres'])} and decades {self.info['decades'][0]}s-"
                               f"{self.info['decades'][-1]}s")

    def _targets(self, conditions: list[Condition]) -> tuple[np.ndarray, np.ndarray]:
        """(asked genres (N, G) bool, asked decade's index (N,)) in the classifier's vocabularies."""
        genres = np.zeros((len(conditions), len(self.info["genres"])), bool)
        for k, c in enumerate(conditions):
            genres[k, [self.info["genres"].index(g) for g in c.genres]] = True
        return genres, np.array([self.info["decades"].index(c.decade) for c in conditions])

    def log_likelihood(self, images: np.ndarray, conditions: list[Condition]) -> np.ndarray:
        """(N,) `condition_log_likelihood` of uint8 (N, H, W, 3) posters for their conditions."""
        p = classify_images(self.model, images, tuple(self.info["size"]))
        genres, decades = self._targets(conditions)
        genre_logits = torch.logit(torch.from_numpy(p["genres"]).float(), eps=_FLOOR)
        decade_log_p = torch.from_numpy(p["decades"]).float().clamp_min(_FLOOR).log()
        return condition_log_likelihood(genre_logits, decade_log_p, torch.from_numpy(genres),
                                        torch.from_numpy(decades)).numpy()

    def select(self, images: np.ndarray, conditions: list[Condition]) -> np.ndarray:
        """The best of each poster's `select_of` draws: (B * N, H, W, 3), draws of a poster in a row -> (B, ...)."""
        if self.select_of == 1:
            return images
        scores = self.log_likelihood(images, [c for c in conditions for _ in range(self.select_of)])
        best = scores.reshape(len(conditions), self.select_of).argmax(1)
        return images.reshape(len(conditions), self.select_of, *images.shape[1:])[np.arange(len(conditions)), best]

    def guide(self, conditions: list[Condition], generator: torch.Generator) -> Guide | None:
        """Classifier guidance for posters asked to be `conditions`, in order: a function from predicted clean
        posters in [-1, 1] to the step up the gradient of `condition_log_likelihood` of A(poster), A a random crop
        and shift (the classifier's own training augmentation, without its rotation and colour jitter) and a
        random blur, drawn from `generator`. Each poster's step has RMS `scale` (a normalised gradient step,
        as FreeDoM takes), so the scale means the same for any classifier; the sampler shrinks it with the
        noise level. None where this steerer does no guidance."""
        if not self.scale:
            return None
        genres, decades = self._targets(conditions)
        model, size = self.model, tuple(self.info["size"])

        def step(clean: torch.Tensor) -> torch.Tensor:
            asked = torch.from_numpy(genres).to(clean.device)
            decade = torch.from_numpy(decades).to(clean.device)
            with torch.enable_grad():
                x = clean.detach().float().clamp(-1, 1).requires_grad_(True)
                genre_logits, decade_logits, _ = model(_seen(x, size, generator))
                log_p = condition_log_likelihood(genre_logits, F.log_softmax(decade_logits.float(), 1), asked, decade)
                grad, = torch.autograd.grad(log_p.sum(), x)
            grad = _coarse(grad)
            rms = grad.pow(2).mean((1, 2, 3), keepdim=True).sqrt().clamp_min(1e-12)
            return self.scale * grad / rms

        return step

    def summary(self) -> dict:
        """What samples.json records of the steering."""
        levers = {"select_of": self.select_of} if self.select_of > 1 else {}
        if self.scale:
            levers["steer_scale"] = self.scale
        return {"classifier": str(self.run_dir.resolve()), "lever": "+".join(levers), **levers}


def condition_log_likelihood(genre_logits: torch.Tensor, decade_log_p: torch.Tensor, asked: torch.Tensor,
                             decade: torch.Tensor) -> torch.Tensor:
    """(B,) log p(the asked genres and none of the others, and the asked decade), from a classifier's genre
    logits (B, G), each genre read on its own, and its decade log-probabilities (B, D); `asked` (B, G) bool and
    `decade` (B,) indices. Best of N ranks by it and classifier guidance climbs it: a Comedy poster is pulled
    away from Romance as well as toward Comedy, so that the genres of one decade come apart. In log space, so
    that guidance's gradient does not vanish where a probability rounds to 0 or 1."""
    genre_log_p = F.logsigmoid(torch.where(asked, genre_logits.float(), -genre_logits.float())).sum(1)
    return genre_log_p + decade_log_p.float().gather(1, decade[:, None].long())[:, 0]


class SteeringLoss:
    """A frozen classifier run's genre and decade loss on a generator's posters, for the generator's training:
    the genres' BCE averaged over the generator's genres (as a GAN's auxiliary classifier is trained: summed
    over them, the genre term outweighed the decade's and the adversarial loss, and G lost what it had made)
    plus the decade's cross-entropy, the posters seen through a random crop, shift and blur (as `Steerer.guide`
    sees them). It is never trained and never saved with the generator."""

    def __init__(self, run_dir: Path | str, genres: list[str], decades: list[int], device):
        self.run_dir, self.info = Path(run_dir), load_run_info(Path(run_dir))
        model = load_model(self.run_dir, self.info)
        if not isinstance(model, GenreClassifier):
            raise LabError(f"steer needs one classifier to take gradients through; {self.run_dir} is an ensemble")
        unknown = [g for g in genres if g not in self.info["genres"]] + \
            [f"{d}s" for d in decades if d not in self.info["decades"]]
        if unknown:
            raise LabError(f"steer {self.run_dir} cannot read {', '.join(unknown)}, which this generator trains on; "
                           "steer it with a classifier trained on the same posters")
        self.model = model.to(device).requires_grad_(False).eval()
        self.genres = torch.tensor([self.info["genres"].index(g) for g in genres], device=device)
        self.decades = torch.tensor([self.info["decades"].index(d) for d in decades], device=device)
        self.size = tuple(self.info["size"])

    def __call__(self, posters: torch.Tensor, genres: torch.Tensor, decades: torch.Tensor,
                 generator: torch.Generator) -> torch.Tensor:
        """posters in [-1, 1] (B, 3, H, W), asked genres (B, G) and decade indices (B,) in the generator's
        vocabularies -> the loss, differentiable in the posters."""
        genre_logits, decade_logits, _ = self.model(_seen(posters.float(), self.size, generator))
        return (F.binary_cross_entropy_with_logits(genre_logits.float()[:, self.genres], genres.float())
                + F.cross_entropy(decade_logits.float(), self.decades[decades]))


def _coarse(grad: torch.Tensor) -> torch.Tensor:
    """The gradient of the posters as a step made of COARSE x COARSE blocks, smoothly joined: the step that a
    change of the posters shrunk to 1/COARSE of their sides would be, so every move is one of layout and
    colour that a blur keeps."""
    h, w = grad.shape[2:]
    return F.interpolate(F.avg_pool2d(grad, COARSE, ceil_mode=True), size=(h, w), mode="bilinear", align_corners=False)


def _seen(posters: torch.Tensor, size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """Posters in [-1, 1] as the steering classifier reads them: blurred at their own size (so that the
    gradient through them is blurred too, and what it asks for is layout and colour, not a pixel pattern),
    then at the classifier's size, in [0, 255], through a random 2:3 crop of 80-100% placed anywhere (its
    training augmentation without rotation and colour jitter); differentiable."""
    x = _blurred((posters.clamp(-1, 1) + 1) * 127.5, generator)
    return augment_posters(resized(x, size), generator, min_scale=0.8, max_degrees=0.0, jitter=0.0)


def _blurred(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image blurred by a Gaussian of its own random standard deviation, MIN_BLUR to MAX_BLUR pixels."""
    sigma = torch.rand(len(images), generator=generator).to(images.device) * (MAX_BLUR - MIN_BLUR) + MIN_BLUR
    radius = math.ceil(3 * MAX_BLUR)
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernel = torch.exp(-offsets[None] ** 2 / (2 * sigma[:, None] ** 2))
    kernel = kernel / kernel.sum(1, keepdim=True)  # (B, taps)
    b, c, h, w = images.shape
    x = images.reshape(1, b * c, h, w)
    per_channel = kernel.repeat_interleave(c, 0)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), per_channel[:, None, None, :], groups=b * c)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), per_channel[:, None, :, None], groups=b * c)
    return x.reshape(b, c, h, w)
