"""`Steerer`: a classifier run that ranks generated posters by how well they show what they were asked to be.

Best of N (`lab sample --steer RUN --select-of N`): every poster is drawn N times, from N noises, and the
draw the steerer finds most likely for its genres and decade is kept. It changes no weight and cannot make
a poster the generator could not, so it is the honest baseline that steering inside a generator must beat.
A steered folder is judged by another classifier (`lab score-samples --judge`): one that steered it rates
its own picks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lab.classifier.inference import classify_images, load_model, load_run_info
from lab.errors import LabError
from lab.generation.condition import Condition

MAX_SELECT_OF = 64
_FLOOR = 1e-6  # keeps log p finite for a probability the classifier rounds to 0


class Steerer:
    """A classifier run's model, loaded once, scoring posters for their conditions."""

    def __init__(self, run_dir: Path, select_of: int):
        if not 2 <= select_of <= MAX_SELECT_OF:
            raise LabError(f"--select-of must be 2 to {MAX_SELECT_OF} draws per poster, not {select_of}")
        self.run_dir, self.select_of = Path(run_dir), select_of
        self.info = load_run_info(self.run_dir)
        self.model = load_model(self.run_dir, self.info)

    def check(self, conditions: list[Condition]) -> None:
        """A one-line LabError for a condition the classifier cannot read."""
        for c in conditions:
            unknown = [g for g in c.genres if g not in self.info["genres"]]
            if unknown or c.decade not in self.info["decades"]:
                raise LabError(f"--steer {self.run_dir} cannot read {c.label()}: it knows genres "
                               f"{', '.join(self.info['genres'])} and decades {self.info['decades'][0]}s-"
                               f"{self.info['decades'][-1]}s")

    def log_likelihood(self, images: np.ndarray, conditions: list[Condition]) -> np.ndarray:
        """(N,) log p(each asked genre) + log p(the asked decade) of uint8 (N, H, W, 3) posters."""
        p = classify_images(self.model, images, tuple(self.info["size"]))
        genres = np.zeros(p["genres"].shape, bool)
        for k, c in enumerate(conditions):
            genres[k, [self.info["genres"].index(g) for g in c.genres]] = True
        decades = np.array([self.info["decades"].index(c.decade) for c in conditions])
        genre_log_p = np.where(genres, np.log(np.maximum(p["genres"], _FLOOR)), 0).sum(1)
        return genre_log_p + np.log(np.maximum(p["decades"][np.arange(len(conditions)), decades], _FLOOR))

    def select(self, images: np.ndarray, conditions: list[Condition]) -> np.ndarray:
        """The best of each poster's `select_of` draws: (B * N, H, W, 3), draws of a poster in a row -> (B, ...)."""
        scores = self.log_likelihood(images, [c for c in conditions for _ in range(self.select_of)])
        best = scores.reshape(len(conditions), self.select_of).argmax(1)
        return images.reshape(len(conditions), self.select_of, *images.shape[1:])[np.arange(len(conditions)), best]

    def summary(self) -> dict:
        """What samples.json records of the steering."""
        return {"classifier": str(self.run_dir.resolve()), "lever": "select_of", "select_of": self.select_of}
