"""Classification Accuracy Score (Ravuri & Vinyals 2019): can posters a generator made teach a classifier?

A small CNN is trained from scratch on generated posters only, each labelled with the genres and
decade it was asked for, and tested on real test posters. The same recipe trained on as many real
training posters (drawn with the same labels' distribution, since the generated ones were asked for
conditions drawn from them) gives the reference; the CAS ratio is generated over real. Macro mAP has
a floor: a classifier that learnt nothing ranks by chance and scores about the genres' frequency, so
the ratio above that floor is reported beside the plain one.

The recipe, for both arms: the from-scratch CNN of the classifier baselines (four strided conv
layers), at the posters' own size, Adam at 1e-3 for `EPOCHS` epochs of batches of 64, the
classifier's poster-preserving augmentation, the genre loss with rare genres weighted up, and the
decade's cross-entropy.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from lab.classifier.augment import augment_posters
from lab.classifier.metrics import macro_map
from lab.classifier.model import SCRATCH_CNN, GenreClassifier, genre_loss
from lab.training import inference_device, seeded

EPOCHS = 8
BATCH = 64
LR = 1e-3
MIN_POSTERS = 200  # generated posters a CAS needs; 2,000 is the lab's usual


def train_and_test(images: np.ndarray, genres: np.ndarray, decades: np.ndarray, test_images: np.ndarray,
                   test_genres: np.ndarray, test_decades: np.ndarray, n_decades: int, *, seed: int = 0,
                   name: str = "cas", progress: bool = False) -> dict:
    """Train the recipe on uint8 posters (N, H, W, 3) with multi-hot genres (N, G) and decade indices (N,);
    its macro mAP and decade accuracy on the test posters."""
    device = inference_device()
    torch.manual_seed(seed)
    model = GenreClassifier(SCRATCH_CNN, genres.shape[1], n_decades, None, dropout=0.0).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    positives = genres.mean(0).clip(1e-3, 1)
    pos_weight = torch.from_numpy(np.sqrt((1 - positives) / positives).clip(1, 10)).float().to(device)
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    y, d = torch.from_numpy(genres).float(), torch.from_numpy(decades).long()
    steps = EPOCHS * -(-len(x) // BATCH)
    model.train()
    with tqdm(total=steps, desc=f"CAS: training on {name}", unit="step", disable=not progress, leave=False) as bar:
        for epoch in range(EPOCHS):
            order = torch.randperm(len(x), generator=seeded(seed, name, "order", epoch))
            for k, rows in enumerate(order.split(BATCH)):
                batch = augment_posters(x[rows].to(device), seeded(seed, name, "augment", epoch, k))
                genre_logits, decade_logits, _ = model(batch)
                loss = genre_loss(genre_logits, y[rows].to(device), pos_weight) + F.cross_entropy(
                    decade_logits.float(), d[rows].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                bar.update(1)
    model.eval()
    genre_scores, decade_scores = [], []
    with torch.no_grad():
        for start in range(0, len(test_images), 256):
            batch = torch.from_numpy(np.ascontiguousarray(test_images[start:start + 256])).permute(0, 3, 1, 2)
            predicted = model.predict(batch.to(device))
            genre_scores.append(predicted["genres"].cpu())
            decade_scores.append(predicted["decades"].cpu())
    genre_scores, decade_scores = torch.cat(genre_scores).numpy(), torch.cat(decade_scores).numpy()
    return {"macro_map": macro_map(genre_scores, test_genres),
            "decade_acc": float((decade_scores.argmax(1) == test_decades).mean())}


def classification_accuracy_score(generated: tuple[np.ndarray, np.ndarray, np.ndarray],
                                  real: tuple[np.ndarray, np.ndarray, np.ndarray],
                                  test: tuple[np.ndarray, np.ndarray, np.ndarray], n_decades: int, *,
                                  seed: int = 0, progress: bool = False) -> dict:
    """`generated`, `real` (training posters, as many as generated) and `test`: (uint8 images, multi-hot
    genres, decade indices) each. Both arms train the same recipe with the same seed."""
    arms = {arm: train_and_test(*data, *test, n_decades, seed=seed, name=arm, progress=progress)
            for arm, data in (("generated", generated), ("real", real))}
    # A classifier that ranks at random scores each genre's frequency among the test posters.
    floor = float(np.mean([test[1][:, j].mean() for j in range(test[1].shape[1]) if test[1][:, j].any()]))
    decade_floor = float(np.bincount(test[2], minlength=n_decades).max() / len(test[2]))
    gen, ref = arms["generated"], arms["real"]
    return {"n": len(generated[0]), "n_test": len(test[0]), "recipe": f"{SCRATCH_CNN} from scratch, {EPOCHS} epochs",
            **arms, "chance": {"macro_map": floor, "decade_acc": decade_floor},
            "map_ratio": gen["macro_map"] / ref["macro_map"],
            "decade_ratio": gen["decade_acc"] / ref["decade_acc"] if ref["decade_acc"] else None,
            "map_ratio_above_chance": _above(gen["macro_map"], ref["macro_map"], floor),
            "decade_ratio_above_chance": _above(gen["decade_acc"], ref["decade_acc"], decade_floor)}


def _above(value: float, reference: float, floor: float) -> float | None:
    """How much of the real arm's gain over chance the generated arm keeps."""
    return (value - floor) / (reference - floor) if reference > floor else None
