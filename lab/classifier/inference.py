"""Loading a trained classifier run and predicting genres and decade for poster files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lab.checkpoint import load_weights
from lab.classifier.model import GenreClassifier
from lab.data.images import BadImage, decode_poster
from lab.errors import LabError
from lab.runs import Run
from lab.training import inference_device

RUN_FILE = "classifier.json"


def load_run_info(run_dir: Path) -> dict:
    Run.open(run_dir)
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise LabError(f"{run_dir} has no {RUN_FILE}: it is not a classifier run, or its training has not "
                       f"finished (continue it with `lab train-classifier --out {run_dir} --resume`)")
    return json.loads(path.read_text())


def load_model(run_dir: Path, info: dict, name: str = "classifier") -> GenreClassifier:
    """One of the run's models (classifier, linear_probe, scratch_cnn), in eval mode, on the GPU if there is one."""
    entry = info["models"].get(name)
    if entry is None:
        raise LabError(f"{run_dir} has no trained {name}")
    model = GenreClassifier(entry["backbone"], len(info["genres"]), len(info["decades"]), weights=None,
                            taps=entry.get("taps", ()))
    load_weights(model, Path(run_dir) / entry["file"])
    return model.eval().to(inference_device())


@dataclass
class Prediction:
    path: str
    genres: list[tuple[str, float]]  # every genre, most probable first
    decade: int | None
    decade_prob: float | None
    error: str | None = None

    def line(self, top: int) -> str:
        if self.error:
            return f"{self.path}   cannot read: {self.error}"
        shown = "  ".join(f"{g} {p:.0%}" for g, p in self.genres[:top])
        return f"{self.path}   {shown}   {self.decade}s"

    def to_dict(self) -> dict:
        return {"path": self.path, "error": self.error, "decade": self.decade, "decade_prob": self.decade_prob,
                "genres": dict(self.genres)}


@torch.no_grad()
def classify_images(model: GenreClassifier, images: np.ndarray, size: tuple[int, int],
                    batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W, 3) -> (genre probabilities (N, G), decade probabilities (N, D)).

    Images of another size are resized to the classifier's (W, H) first, as generated posters often are.
    """
    genre_out = [torch.zeros(0, model.genre_head.out_features)]  # what no image at all gives
    decade_out = [torch.zeros(0, model.decade_head.out_features)]
    device = next(model.parameters()).device
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).permute(0, 3, 1, 2)
        batch = batch.to(device)
        if tuple(batch.shape[2:]) != (size[1], size[0]):
            batch = F.interpolate(batch.float(), size=(size[1], size[0]), mode="bilinear", antialias=True,
                                  align_corners=False).clamp(0, 255)
        genre_logits, decade_logits = model(batch)
        genre_out.append(torch.sigmoid(genre_logits.float()).cpu())
        decade_out.append(torch.softmax(decade_logits.float(), 1).cpu())
    return torch.cat(genre_out).numpy(), torch.cat(decade_out).numpy()


def predict_files(run_dir: Path, paths: list[str]) -> list[Prediction]:
    info = load_run_info(run_dir)
    model = load_model(run_dir, info)
    size = tuple(info["size"])
    out, pixels, where = [], [], []
    for path in paths:
        try:
            pixels.append(decode_poster(path, size))
            where.append(len(out))
            out.append(None)
        except (BadImage, FileNotFoundError, IsADirectoryError) as e:
            out.append(Prediction(str(path), [], None, None, str(e) or "no such file"))
    if pixels:
        genre_p, decade_p = classify_images(model, np.stack(pixels), size)
        for k, i in enumerate(where):
            order = np.argsort(-genre_p[k])
            d = int(decade_p[k].argmax())
            out[i] = Prediction(str(paths[i]), [(info["genres"][j], float(genre_p[k, j])) for j in order],
                                int(info["decades"][d]), float(decade_p[k, d]))
    return out
