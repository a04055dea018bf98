"""Has a generator memorised its training posters? Each sample against its nearest training posters.

A copy lies much closer to the one poster it copies than to any other, so the test is the ratio of
the distance to the nearest training poster over that to the second nearest (a plain distance would
flag every blurry, flat sample, which lies near many plain posters alike). The rule: a poster counts
as memorised when that ratio is below what 95% of real validation posters have, in pixels (32x48
thumbnails) and in the features of the poster CNN trained from scratch alike. Real validation
posters set the thresholds; real test posters, which no generator saw either, then show how often
an honest new poster is flagged by chance, the figure a generator's share is read against. A
training poster given as a sample has ratio 0 in both spaces, and is always flagged.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lab.generation.run_info import open_generator_posters

PERCENTILE = 5.0  # of the real validation posters' distances to their nearest training poster
THUMBNAIL = (32, 48)  # (W, H) of the pixel space
RULE = (f"its distance to the nearest training poster over that to the second nearest is below what {100 - PERCENTILE:g}% "
        "of real validation posters have, in pixels (32x48) and in the scratch CNN's features alike")


def thumbnails(images: np.ndarray, batch: int = 512) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> (N, 3 * 32 * 48) floats in [0, 1], each poster averaged down (or up) to 32x48."""
    out = []
    for start in range(0, len(images), batch):
        x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch])).permute(0, 3, 1, 2).float() / 255
        out.append(F.interpolate(x, size=(THUMBNAIL[1], THUMBNAIL[0]), mode="area").flatten(1))
    return torch.cat(out) if out else torch.zeros(0, 3 * THUMBNAIL[0] * THUMBNAIL[1])


def nearest(queries: torch.Tensor, references: torch.Tensor, rows: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """(ratio of the nearest reference's distance to the second nearest's, index of the nearest) per query."""
    ratios, indices = [], []
    for part in queries.float().split(rows):
        best = torch.cdist(part, references.float()).topk(2, dim=1, largest=False)
        ratios.append(best.values[:, 0] / best.values[:, 1].clamp(min=1e-12))
        indices.append(best.indices[:, 0])
    return torch.cat(ratios), torch.cat(indices)


def memorisation(samples: dict[str, torch.Tensor], train: dict[str, torch.Tensor], val: dict[str, torch.Tensor],
                 test: dict[str, torch.Tensor]) -> dict:
    """Each argument maps a space's name ("pixels" and the independent features) to (N, F) points.

    Returns the rule, each space's threshold, the share of samples flagged and of real test posters
    flagged, and per sample its nearest training poster (index into `train`, in pixels) and its
    closeness: the largest over the spaces of ratio / threshold (below 1 in every space: flagged).
    """
    thresholds = {space: float(np.percentile(nearest(val[space], train[space])[0].numpy(), PERCENTILE))
                  for space in samples}

    def closeness(points: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        ratios, pixel_index = [], None
        for space, threshold in thresholds.items():
            ratio, index = nearest(points[space], train[space])
            ratios.append(ratio / max(threshold, 1e-12))
            if space == "pixels":
                pixel_index = index
        return torch.stack(ratios).max(dim=0).values, pixel_index

    sample_closeness, sample_nearest = closeness(samples)
    test_closeness, _ = closeness(test)
    return {"rule": RULE, "thresholds": thresholds,
            "share": float((sample_closeness < 1).double().mean()) if len(sample_closeness) else None,
            "real_test_share": float((test_closeness < 1).double().mean()) if len(test_closeness) else None,
            "closeness": sample_closeness.tolist(), "nearest": sample_nearest.tolist()}


class NearestTrainingPoster:
    """Finds the training poster nearest each new poster, in the pixel space of the memorisation check,
    so that a person can see a sample beside what it may copy (`lab app`)."""

    def __init__(self, images: np.ndarray, ids: list[str]):
        self.images, self.ids = images, ids
        self.points = thumbnails(images)

    @classmethod
    def of_run(cls, run_dir, size: tuple[int, int], *, progress: bool = False) -> "NearestTrainingPoster":
        """The training posters of a generator run, at `size`."""
        posters = open_generator_posters(run_dir, size, progress=progress)
        train = posters.parts["train"]
        return cls(posters.images[train], [str(i) for i in posters.table.posters["imdb_id"].to_numpy()[train]])

    def find(self, images: np.ndarray) -> tuple[list[int], list[float]]:
        """Per poster of uint8 (N, H, W, 3): the index of its nearest training poster, and the ratio of that
        distance to the second nearest's (the check flags a copy by a small ratio)."""
        ratios, indices = nearest(thumbnails(images), self.points)
        return indices.tolist(), ratios.tolist()
