"""Loading a trained classifier run and predicting genres, decade and rating for poster files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lab.checkpoint import load_weights
from lab.classifier.ensemble import Ensemble
from lab.classifier.model import INFERENCE_BATCH, GenreClassifier, label_vector
from lab.classifier.views import check_views, resized
from lab.data.filters import canonical_genres
from lab.data.images import BadImage, decode_poster
from lab.errors import LabError
from lab.kinds import get, kind_of
from lab.training import inference_device, inference_precision

RUN_FILE = get("classifier").run_file
READERS = ("classifier", "ensemble")  # the kinds of run that read posters


def load_run_info(run_dir: Path) -> dict:
    """What a classifier or ensemble run records (its run file): genres, decades, size, prior, models."""
    kind = kind_of(run_dir)
    path = Path(run_dir) / kind.run_file
    if kind.name not in READERS:
        raise LabError(f"{run_dir} is a {kind.title} run: it is not a classifier run (nor an ensemble of them)")
    if not path.is_file():
        how = (f"continue it with `lab train-classifier --out {run_dir} --resume`" if kind.name == "classifier"
               else "make it again with `lab ensemble`")
        raise LabError(f"{run_dir} has no {kind.run_file}: it is not a classifier run, or it has not finished ({how})")
    return json.loads(path.read_text())


def load_model(run_dir: Path, info: dict, name: str = "classifier", *, views: tuple[str, ...] = (),
               size: tuple[int, int] | None = None) -> GenreClassifier | Ensemble:
    """One of the run's models (classifier, linear_probe, scratch_cnn), in eval mode, on the GPU if there is one.

    An ensemble run's classifier is its `Ensemble`. `views` (lab.classifier.views) and `size` (W, H) make it
    read each poster that way instead, averaged over the views: the run as `lab evaluate --views --size` tries it.
    """
    entry = info["models"].get(name)
    if entry is None:
        raise LabError(f"{run_dir} has no trained {name}")
    if "members" in entry:
        model = Ensemble([load_model(m["run"], load_run_info(m["run"])) for m in entry["members"]],
                         [m["size"] for m in entry["members"]], [m["views"] for m in entry["members"]],
                         [m["weight"] for m in entry["members"]])
    else:
        model = GenreClassifier(entry["backbone"], len(info["genres"]), len(info["decades"]), weights=None,
                                taps=entry.get("taps", ()), rating="rating" in info,
                                extra_features=tuple(entry.get("extra_features", ())))
        load_weights(model, Path(run_dir) / entry["file"])
    if views or (size and tuple(size) != tuple(info["size"])):
        model = Ensemble([model], [size or tuple(info["size"])], [check_views(views)], [1.0])
    return model.eval().to(inference_device())


def reading_runs(run_dir: Path) -> set[Path]:
    """The classifier runs whose networks read posters for `run_dir`: itself, or an ensemble's members."""
    members = load_run_info(run_dir)["models"]["classifier"].get("members")
    return {Path(m["run"]).resolve() for m in members} if members else {Path(run_dir).resolve()}


def extra_feature_names(info: dict, size: tuple[int, int] | None = None) -> tuple[str, ...]:
    """The extra networks (lab.classifier.extra_features) that a run's classifier reads: an ensemble's, its
    members'; with `size` (W, H), only those of the members that read posters at that size. A command that reads
    a dataset's posters decoded at `size` precomputes these features first: a poster's features are found by its
    pixels, so a member that resizes the posters to another size reads none of them."""
    entry = info["models"]["classifier"]
    if "members" not in entry:
        return tuple(entry.get("extra_features", ()))
    names = [n for m in entry["members"] if size is None or tuple(m["size"]) == tuple(size)
             for n in extra_feature_names(load_run_info(m["run"]))]
    return tuple(dict.fromkeys(names))


@dataclass
class Prediction:
    path: str
    genres: list[tuple[str, float]]  # every genre, most probable first
    decade: int | None
    decade_prob: float | None
    rating: float | None = None  # predicted IMDb rating; None from a run with no rating head
    error: str | None = None

    def line(self, top: int) -> str:
        if self.error:
            return f"{self.path}   cannot read: {self.error}"
        shown = "  ".join(f"{g} {p:.0%}" for g, p in self.genres[:top])
        rating = f"   rating {self.rating:.2f}" if self.rating is not None else ""
        return f"{self.path}   {shown}   {self.decade}s{rating}"

    def to_dict(self) -> dict:
        return {"path": self.path, "error": self.error, "decade": self.decade, "decade_prob": self.decade_prob,
                "genres": dict(self.genres), "rating": self.rating}


@torch.no_grad()
def classify_images(model: GenreClassifier | Ensemble, images: np.ndarray, size: tuple[int, int],
                    batch_size: int = INFERENCE_BATCH, labels: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """uint8 (N, H, W, 3) -> `GenreClassifier.predict`'s figures as arrays: genres (N, G), decades (N, D)
    and, from a model with a rating head, rating (N,) and, where `labels` (1, G + D + 2) are given for
    every image, rating_given (N,).

    Images of another size are resized to the classifier's (W, H) first, as generated posters often are.
    """
    outputs = {"genres": [torch.zeros(0, model.n_genres)],  # what no image at all gives
               "decades": [torch.zeros(0, model.n_decades)]}
    device = next(model.parameters()).device
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).permute(0, 3, 1, 2)
        batch = resized(batch.to(device), size)
        given = None if labels is None else labels.to(device).expand(len(batch), -1)
        with inference_precision(device):
            predicted = model.predict(batch, given)
        for key, value in predicted.items():
            outputs.setdefault(key, []).append(value.cpu())
    return {key: torch.cat(values).numpy() for key, values in outputs.items()}


def film_labels(info: dict, genres: list[str] | None, year: int | None) -> torch.Tensor | None:
    """What a user knows of the film (--genre, --year) as the rating head's input (1, G + D + 2);
    None when nothing is known."""
    if not genres and year is None:
        return None
    if "rating" not in info:
        raise LabError("this classifier run has no rating head (it was trained on posters without ratings), "
                       "so --genre/--year have nothing to inform")
    multi_hot = torch.zeros(1, len(info["genres"]))
    for g in canonical_genres(genres or [], info["genres"]):
        multi_hot[0, info["genres"].index(g)] = 1
    decade = -1 if year is None else year // 10 * 10
    if year is not None and decade not in info["decades"]:
        raise LabError(f"--year {year}: this run knows the decades {info['decades'][0]}s-{info['decades'][-1]}s")
    index = torch.tensor([info["decades"].index(decade) if decade >= 0 else 0])
    return label_vector(multi_hot, index, len(info["decades"]), torch.tensor([float(bool(genres))]),
                        torch.tensor([float(year is not None)]))


class TrainedClassifier:
    """A classifier run opened once, its model loaded, for many predictions (`lab predict`, `lab app`)."""

    def __init__(self, run_dir: Path, views: tuple[str, ...] = (), size: tuple[int, int] | None = None):
        self.run_dir = Path(run_dir)
        self.info = load_run_info(self.run_dir)
        self.model = load_model(self.run_dir, self.info, views=views, size=size)
        self.size = tuple(size or self.info["size"])
        self.genres: list[str] = self.info["genres"]

    def decode(self, path: str | Path) -> np.ndarray:
        """A poster file as the classifier reads it, uint8 (H, W, 3); `BadImage` says why one cannot be read."""
        if not Path(path).exists():
            raise BadImage("no such file")
        try:
            return decode_poster(path, self.size)
        except (FileNotFoundError, IsADirectoryError) as e:
            raise BadImage(str(e) or "no such file") from None

    def predict_pixels(self, pixels: np.ndarray, paths: list[str] | None = None, genres: list[str] | None = None,
                       year: int | None = None) -> list[Prediction]:
        """A `Prediction` per poster of uint8 (N, H, W, 3); the rating is told `genres`/`year` where given."""
        p = classify_images(self.model, pixels, self.size, labels=film_labels(self.info, genres, year))
        ratings = p.get("rating_given", p.get("rating"))
        out = []
        for k in range(len(pixels)):
            order = np.argsort(-p["genres"][k])
            d = int(p["decades"][k].argmax())
            out.append(Prediction(str(paths[k]) if paths else f"poster {k}",
                                  [(self.genres[j], float(p["genres"][k, j])) for j in order],
                                  int(self.info["decades"][d]), float(p["decades"][k, d]),
                                  None if ratings is None else float(ratings[k])))
        return out

    def predict_files(self, paths: list[str], genres: list[str] | None = None,
                      year: int | None = None) -> list[Prediction]:
        """A `Prediction` per poster file; one that cannot be read has its reason as `error`."""
        film_labels(self.info, genres, year)  # a bad --genre/--year is refused before any poster is read
        out: list[Prediction | None] = []
        pixels, where = [], []
        for path in paths:
            try:
                pixels.append(self.decode(path))
                where.append(len(out))
                out.append(None)
            except BadImage as e:
                out.append(Prediction(str(path), [], None, None, error=str(e)))
        if pixels:
            for i, prediction in zip(where, self.predict_pixels(np.stack(pixels), [paths[i] for i in where],
                                                                genres, year)):
                out[i] = prediction
        return out


def predict_files(run_dir: Path, paths: list[str], genres: list[str] | None = None, year: int | None = None,
                  views: tuple[str, ...] = (), size: tuple[int, int] | None = None) -> list[Prediction]:
    """Genres, decade and rating of each poster file; the rating is told `genres`/`year` where given. `views`
    and `size` as in `load_model`."""
    return TrainedClassifier(run_dir, views, size).predict_files(paths, genres, year)
