"""Grad-CAM: where in a poster the classifier found a genre, from its backbone's last conv block.

The heatmap of genre g is relu(sum over channels of mean(d logit_g / d A) * A), A the activations
of the last backbone block with a spatial map (Selvaraju et al. 2017), upsampled to the poster.
Plain torch hooks: any backbone the classifier takes works, no extra package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from PIL import Image

from lab.classifier.ensemble import Ensemble
from lab.classifier.inference import TrainedClassifier, classify_images
from lab.classifier.model import GenreClassifier, backbone_blocks
from lab.classifier.views import resized
from lab.data.images import BadImage
from lab.errors import LabError

OVERLAY_ALPHA = 0.5  # share of the heatmap's colour over the poster where the heatmap is hottest


def grad_cam(model: GenreClassifier | Ensemble, images: np.ndarray, genres: list[int] | None = None,
             batch_size: int = 16, *, rating: bool = False) -> tuple[np.ndarray, list[int]]:
    """uint8 posters (N, H, W, 3) and one genre index each (default: each poster's most probable genre)
    -> (heatmaps (N, H, W) in [0, 1], the genre of each heatmap). With `rating`, the heatmap is where the
    poster raised its predicted rating (from the poster alone), and no genre is chosen."""
    if isinstance(model, Ensemble):
        return _ensemble_cam(model, images, genres, batch_size, rating)
    device = next(model.parameters()).device
    heatmaps, chosen_genres = [], []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).permute(0, 3, 1, 2)
        batch = batch.to(device).float().requires_grad_(True)  # so the activations carry a graph
        logits, predicted_rating, activations = _forward_keeping_last_map(model, batch)
        # In eval mode the posters of a batch are independent: one backward gives each its own gradient.
        if rating:
            chosen, score = [], predicted_rating.sum()
        else:
            chosen = logits.argmax(1).tolist() if genres is None else list(genres[start:start + len(batch)])
            score = logits[torch.arange(len(batch)), torch.as_tensor(chosen, device=device)].sum()
        grads, = torch.autograd.grad(score, activations)
        cam = F.relu((grads.mean((2, 3), keepdim=True) * activations).sum(1, keepdim=True))
        cam = F.interpolate(cam.float(), size=batch.shape[2:], mode="bilinear", align_corners=False)[:, 0]
        peak = cam.flatten(1).max(1).values.clamp_min(1e-12).view(-1, 1, 1)
        heatmaps.append((cam / peak).detach().cpu().numpy())
        chosen_genres += chosen
    empty = np.zeros((0, *images.shape[1:3]), np.float32)
    return (np.concatenate(heatmaps) if heatmaps else empty), chosen_genres


def _ensemble_cam(model: Ensemble, images: np.ndarray, genres: list[int] | None, batch_size: int,
                  rating: bool) -> tuple[np.ndarray, list[int]]:
    """The members' heatmaps of the genre the ensemble finds most probable, each member looking at the
    poster at its own size (its test-time views left out), averaged with the members' weights."""
    if genres is None and not rating:
        genres = classify_images(model, images, images.shape[2:0:-1])["genres"].argmax(1).tolist()
    total, weights = 0, 0.0
    for member, size, weight in zip(model.members, model.sizes, model.weights):
        if weight == 0 or (rating and getattr(member, "rating_head", None) is None):
            continue
        pixels = resized(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2), size)
        pixels = pixels.round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        heat, _ = grad_cam(member, pixels, genres, batch_size, rating=rating)
        heat = F.interpolate(torch.from_numpy(heat)[:, None], size=images.shape[1:3], mode="bilinear",
                             align_corners=False)[:, 0].numpy()
        total, weights = total + weight * heat, weights + weight
    if not weights:
        raise LabError("no member of this ensemble has a rating head to take a heatmap of the rating from")
    heat = total / weights
    peak = heat.reshape(len(heat), -1).max(1).clip(1e-12)[:, None, None]
    return (heat / peak).astype(np.float32), ([] if rating else list(genres))


def _forward_keeping_last_map(model: GenreClassifier, batch: torch.Tensor):
    """(genre logits, rating or None, output of the last backbone block that is still a map (B, C, h, w))."""
    kept: list[torch.Tensor] = []

    def keep(module, inputs, output):
        if output.dim() == 4 and output.shape[2] * output.shape[3] > 1:  # not yet pooled away
            kept.append(output)

    handles = [block.register_forward_hook(keep) for block in backbone_blocks(model.backbone)]
    try:
        logits, _, predicted_rating = model(batch)
    finally:
        for handle in handles:
            handle.remove()
    if not kept:
        raise LabError("this backbone has no convolutional block to take a Grad-CAM heatmap from")
    return logits, predicted_rating, kept[-1]


def overlay(image: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """A poster (H, W, 3) uint8 with a heatmap (H, W) in [0, 1] laid over it in the jet colours."""
    colour = colormaps["jet"](heat)[..., :3] * 255
    alpha = OVERLAY_ALPHA * heat[..., None] ** 0.5  # cold regions keep the poster visible
    return (image * (1 - alpha) + colour * alpha).round().clip(0, 255).astype(np.uint8)


def poster_heatmap(classifier: TrainedClassifier, pixels: np.ndarray, genre: str | None = None) -> tuple[np.ndarray, str]:
    """One poster (H, W, 3) at the classifier's size -> (the poster with the heatmap of `genre` laid over it,
    that genre); no genre: the poster's most probable one."""
    if genre is not None and genre not in classifier.genres:
        raise LabError(f"this classifier knows no genre {genre!r}; it knows {', '.join(classifier.genres)}")
    asked = None if genre is None else [classifier.genres.index(genre)]
    heatmaps, chosen = grad_cam(classifier.model, np.stack([pixels]), asked)
    return overlay(pixels, heatmaps[0]), classifier.genres[chosen[0]]


def cam_files(run_dir: Path, paths: list[str], out_dir: Path) -> list[tuple[Path | None, str | None]]:
    """For each poster file, write `<stem>-cam.png` into out_dir: the heatmap of its most probable genre.

    Returns (written file or None, that genre or the reason the poster could not be read) per path.
    """
    classifier = TrainedClassifier(run_dir)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LabError(f"cannot make the heatmap folder {out_dir}: {e.strerror or e}; choose another --cam-dir") from None
    results: list = [None] * len(paths)
    pixels, where = [], []
    for k, path in enumerate(paths):
        try:
            pixels.append(classifier.decode(path))
            where.append(k)
        except BadImage as e:
            results[k] = (None, str(e))
    if pixels:
        heatmaps, genres = grad_cam(classifier.model, np.stack(pixels), None)
        for k, image, heat, genre in zip(where, pixels, heatmaps, genres):
            target = out_dir / f"{Path(paths[k]).stem}-cam.png"
            Image.fromarray(overlay(image, heat)).save(target)
            results[k] = (target, classifier.genres[genre])
    return results
