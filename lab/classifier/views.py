"""Test-time views of a batch of posters: the poster itself, its mirror image, and crops of it.

A classifier's probabilities averaged over views can read a poster better than one look, or worse
(Shanmugam et al. 2021: test-time augmentation also flips correct answers), so a view is kept only
where validation says it helps (`lab ensemble`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lab.errors import LabError

VIEWS = ("flip", "crops")
# The crops: the top, the middle and the bottom of the poster at this share of its height and width, so
# each keeps the poster's 2:3 shape; the title and the billing block sit at the top or the bottom.
CROP = 0.875


def check_views(views) -> tuple[str, ...]:
    unknown = [v for v in views if v not in VIEWS]
    if unknown:
        raise LabError(f"unknown test-time view {unknown[0]!r}: the views are {', '.join(VIEWS)}")
    return tuple(v for v in VIEWS if v in views)


def resized(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 3, H, W) posters in [0, 255] at `size` (W, H): as they are where they already have it, else
    resized (bilinear, antialiased) to floats."""
    if tuple(images.shape[2:]) == (size[1], size[0]):
        return images
    return F.interpolate(images.float(), size=(size[1], size[0]), mode="bilinear", antialias=True,
                         align_corners=False).clamp(0, 255)


def view_names(views: tuple[str, ...]) -> list[str]:
    """What each of `view_batches(images, views)` is, in its order."""
    names = ["poster", *(("top", "middle", "bottom") if "crops" in views else ())]
    return names + [f"{name}, mirrored" for name in names] if "flip" in views else names


def view_indices(views: tuple[str, ...], among: tuple[str, ...]) -> list[int]:
    """Where each of `views`' views sits among those of `among` (both as `check_views` gives them)."""
    names = view_names(among)
    return [names.index(name) for name in view_names(views)]


def view_batches(images: torch.Tensor, views: tuple[str, ...]) -> list[torch.Tensor]:
    """(B, 3, H, W) posters in [0, 255] -> the same posters seen each way `views` asks, at the same size;
    the first is the posters as they are."""
    out = [images]
    if "crops" in views:
        h, w = images.shape[2:]
        ch, cw = round(h * CROP), round(w * CROP)
        left = (w - cw) // 2
        for top in (0, (h - ch) // 2, h - ch):
            crop = images[:, :, top:top + ch, left:left + cw].float()
            out.append(F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 255))
    if "flip" in views:
        out += [view.flip(3) for view in out]
    return out
