"""`train_classifier`: fine-tune a backbone for genres, decade and rating, then train the baselines beside it.

Recipe: the heads first on a frozen backbone, then the backbone's blocks unfrozen from the top
down with a lower learning rate; poster-preserving augmentation; positive weights for rare
genres; early stopping on validation macro mAP; per-genre thresholds tuned on validation.
Training runs through accelerate, checkpoints every few hundred steps and at each epoch's end,
and continues exactly where it stopped with `resume`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from tqdm import tqdm

from lab.checkpoint import STATE_FILE, load_state, load_weights, save_json, save_state, save_weights
from lab.classifier.augment import augment_posters
from lab.classifier.baselines import extract_features, fit_genre_decade, fit_rating_head, train_linear_probe
from lab.classifier.extra_features import precompute
from lab.classifier.inference import RUN_FILE
from lab.classifier.metrics import macro_map, tune_rating_threshold, tune_thresholds
from lab.classifier.model import (INFERENCE_BATCH, SCRATCH_CNN, GenreClassifier, asymmetric_loss, genre_loss, label_vector,
                                  rating_loss)
from lab.classifier.options import ClassifierOptions
from lab.data.images import parse_size
from lab.data.poster_dataset import PosterDataset, Posters, batch_loader, open_posters
from lab.errors import LabError
from lab.runs import Run
from lab.training import WeightAverage, default_workers, inference_precision, make_accelerator, seeded

log = logging.getLogger(__name__)
MIN_RATED = 20  # training posters with a rating that a rating head needs


def train_classifier(opts: ClassifierOptions, run: Run, *, resume: bool = False, progress: bool = True) -> dict:
    """Train the classifier and its baselines in `run`; returns what classifier.json records."""
    accelerator = make_accelerator(opts.mixed_precision, opts.grad_accum, unused_parameters=True, run=run)
    split_file = run.path / "split.json"
    posters = open_posters(opts.data, opts.poster_filter, parse_size(opts.size), split_seed=opts.split_seed,
                           split_file=split_file if resume and split_file.exists() else None, progress=progress)
    if accelerator.is_main_process:
        posters.save_split(run.path, opts.split_seed)
    for part in ("train", "val"):
        if not len(posters.parts[part]):
            raise LabError(f"the {part} part of the split is empty: too few posters pass the filters")
    info = _run_info(run, posters, opts)
    models = info["models"]
    rating = info.get("rating")
    median = rating["median"] if rating else None  # of the training ratings: "well rated" starts there

    def build(backbone: str, weights: str | None, **kwargs) -> GenreClassifier:
        torch.manual_seed(opts.seed)  # the heads' initial weights belong to the run's seed too
        model = GenreClassifier(backbone, len(posters.genres), len(posters.decades), weights,
                                rating=rating is not None, **kwargs)
        if rating is not None:
            model.rating_head.start_from(rating)
        return model

    if rating is not None and "genre_decade" not in rating:  # closed form: refitted the same after a kill
        rating["genre_decade"] = fit_genre_decade(posters, opts.rating_min_votes, median)
    if "classifier" not in models:
        model = build(opts.backbone, opts.weights, taps=opts.taps, extra_features=tuple(opts.extra_features),
                      extra_dropout=opts.extra_dropout)
        if opts.extra_features:
            extra = precompute(posters.cache, opts.extra_features, progress=progress and accelerator.is_main_process)
            rows = posters.table.posters["cache_row"].to_numpy()[posters.parts["train"]]
            model.set_extra_scale(torch.from_numpy(extra[rows]))
        models["classifier"] = fit(model, posters, opts, run, "checkpoints", accelerator, resume, progress,
                                   name="classifier", median=median)
        models["classifier"].update(backbone=opts.backbone, weights=opts.weights, taps=list(opts.taps),
                                    extra_features=list(opts.extra_features))
        _save_info(info, run, accelerator)
    if opts.baselines and "linear_probe" not in models and opts.weights is not None:
        models["linear_probe"] = train_linear_probe(build(opts.backbone, opts.weights, dropout=0.0), posters, opts,
                                                    run, accelerator, pos_weights(posters, opts.max_pos_weight),
                                                    progress, median=median)
        _save_info(info, run, accelerator)
    if opts.baselines and "scratch_cnn" not in models:
        # The earlier Keras project's small CNN, from scratch, with the same epochs and augmentation.
        # Its features know nothing but what its losses teach them, so the rating trains them too.
        cnn_opts = ClassifierOptions(**{**asdict(opts), "backbone": SCRATCH_CNN, "weights": None,
                                        "schedule": [[opts.epochs, 1.0]], "backbone_lr": opts.lr,
                                        "taps": [], "rating_trains_features": True})
        model = build(SCRATCH_CNN, None, dropout=0.0)
        models["scratch_cnn"] = fit(model, posters, cnn_opts, run, "baselines/scratch_cnn", accelerator, resume,
                                    progress, name="scratch_cnn", median=median)
        models["scratch_cnn"]["backbone"], models["scratch_cnn"]["weights"] = SCRATCH_CNN, None
        _save_info(info, run, accelerator)
    return info


def _run_info(run: Run, posters: Posters, opts: ClassifierOptions) -> dict:
    path = run.path / RUN_FILE
    if path.exists():
        return json.loads(path.read_text())
    train = posters.parts["train"]
    genre_matrix = posters.genre_matrix[train]
    decade_freq = np.bincount(posters.decade_index[train], minlength=len(posters.decades)) / len(train)
    info = {"genres": posters.genres, "decades": posters.decades, "size": list(parse_size(opts.size)),
            "filter": posters.filter.to_dict(), "dataset": posters.fingerprint,
            "prior": {"genres": genre_matrix.mean(0).tolist(), "decades": decade_freq.tolist()},
            "models": {}}
    targets = posters.rating_targets(opts.rating_min_votes)[train]
    targets = targets[~np.isnan(targets)]
    if opts.rating_weight > 0 and len(targets) >= MIN_RATED:
        # "Well rated" means at or above the median of every rated training poster, whatever its votes.
        info["rating"] = {"mean": float(targets.mean()), "std": float(max(targets.std(), 1e-3)),
                          "median": float(np.nanmedian(posters.ratings[train])), "n_train": int(len(targets)),
                          "min_votes": opts.rating_min_votes}
    elif opts.rating_weight > 0:
        log.warning("no rating head: %d training posters have a rating with at least %d votes (need %d)",
                    len(targets), opts.rating_min_votes, MIN_RATED)
    return info


def _save_info(info: dict, run: Run, accelerator: Accelerator) -> None:
    if accelerator.is_main_process:
        save_json(info, run.path / RUN_FILE)


def pos_weights(posters: Posters, cap: float) -> torch.Tensor:
    """sqrt(negatives / positives) per genre, so rare genres count without swamping the loss."""
    y = posters.genre_matrix[posters.parts["train"]]
    pos = np.maximum(y.sum(0), 1)
    return torch.tensor(np.clip(np.sqrt((len(y) - pos) / pos), 1.0, cap), dtype=torch.float32)


def fit(model: GenreClassifier, posters: Posters, opts: ClassifierOptions, run: Run, folder: str,
        accelerator: Accelerator, resume: bool, progress: bool, *, name: str, median: float | None = None) -> dict:
    """Train `model` by the schedule; best and last weights and the resumable state go into run/folder."""
    ckpt = run.path / folder
    rated = model.rating_head is not None and opts.rating_trains_features  # the rating trains in the loop
    train_ds = posters.dataset("train", posters.rating_targets(opts.rating_min_votes) if rated else None)
    head_params = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    optimizer = torch.optim.AdamW([
        {"params": head_params, "lr": opts.lr, "base_lr": opts.lr},
        {"params": list(model.backbone.parameters()), "lr": opts.backbone_lr, "base_lr": opts.backbone_lr},
    ], weight_decay=opts.weight_decay)
    # The batch is shared out over the processes: a launch on N devices trains the same schedule faster.
    per_process = max(1, opts.batch_size // accelerator.num_processes)
    steps_per_epoch = math.ceil(len(train_ds) / (per_process * accelerator.num_processes * opts.grad_accum))
    total_steps = max(1, steps_per_epoch * opts.epochs)
    state = {"epoch": 0, "batch": 0, "step": 0, "best": -1.0, "best_epoch": -1, "stale": 0}
    # Batch-norm statistics are averaged with the weights, so that they describe the averaged network.
    ema = WeightAverage(model, average_buffers=True) if opts.ema else None
    if resume and (ckpt / STATE_FILE).exists():
        saved = load_state(ckpt / STATE_FILE)
        model.load_state_dict(saved.pop("model"))
        optimizer.load_state_dict(saved.pop("optimizer"))
        averaged = saved.pop("ema", None)
        if ema is not None and averaged is not None:
            ema.load_state_dict(averaged)
        state.update(saved)
        log.info("%s: resuming at epoch %d, batch %d", name, state["epoch"], state["batch"])
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model)
    weights = pos_weights(posters, opts.max_pos_weight).to(accelerator.device)
    workers = default_workers() if opts.workers is None else opts.workers

    def save_last():
        # Resuming reads one file, renamed into place whole: weights, optimizer and counters can
        # never come from different steps. last.safetensors is the same weights, for users.
        if accelerator.is_main_process:
            save_state({"model": unwrapped.state_dict(), "optimizer": optimizer.state_dict(),
                        "ema": ema.state_dict() if ema is not None else None, **state}, ckpt / STATE_FILE)
            save_weights(unwrapped, ckpt / "last.safetensors")

    while state["epoch"] < opts.epochs and state["stale"] < opts.patience:
        epoch = state["epoch"]
        model.train()
        unwrapped.set_trainable(opts.trained_share(epoch))
        order = torch.randperm(len(train_ds), generator=seeded(opts.seed, name, "order", epoch)).numpy()
        loader = accelerator.prepare_data_loader(batch_loader(train_ds, per_process, order=order, workers=workers))
        batches = accelerator.skip_first_batches(loader, state["batch"]) if state["batch"] else loader
        started = time.perf_counter()
        # Summed on the device and read only now and then: reading a loss every batch makes a GPU wait.
        # A resumed epoch goes on from the sum its checkpoint saved, so it reports the whole epoch's loss.
        loss_sum = torch.tensor(float(state.get("loss_sum", 0.0)), device=accelerator.device)
        n_losses = int(state.get("n_losses", 0))
        bar = tqdm(batches, total=len(loader), initial=state["batch"], desc=f"{name} epoch {epoch + 1}/{opts.epochs}",
                   unit="batch", disable=not (progress and accelerator.is_main_process), leave=False)
        for images, genres, decades, ratings in bar:
            generator = seeded(opts.seed, name, "augment", epoch, state["batch"], accelerator.process_index)
            torch.manual_seed(generator.initial_seed())  # dropout too repeats exactly after a resume
            # The extra networks read each poster as it is stored, where their features were computed once.
            extra = unwrapped.extra(images) if unwrapped.extra is not None else None
            images = augment_posters(images, generator, flip=opts.flip)
            labels = None
            if rated:  # each label hidden at random, so that one head rates with and without them
                given = (torch.rand(2, len(images), generator=generator) >= opts.label_dropout).to(images.device)
                labels = label_vector(genres, decades, len(posters.decades), given[0], given[1])
            with accelerator.accumulate(model):
                genre_logits, decade_logits, rating = model(images, labels, extra)
                genre_term = (asymmetric_loss(genre_logits, genres) if opts.genre_loss == "asymmetric"
                              else genre_loss(genre_logits, genres, weights))
                loss = (genre_term + opts.decade_weight * F.cross_entropy(decade_logits.float(), decades))
                if rated:
                    loss = loss + opts.rating_weight * rating_loss(rating, ratings, unwrapped.rating_head.scale)
                accelerator.backward(loss)
                _set_lr(optimizer, state["step"], total_steps, opts.warmup)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            if accelerator.sync_gradients:
                state["step"] += 1
                if ema is not None:  # short warm-up: the average should not remember the random heads long
                    ema.update(min(opts.ema, (1 + state["step"]) / (10 + state["step"])))
            state["batch"] += 1
            loss_sum += loss.detach()
            n_losses += 1
            if state["batch"] % 50 == 0 and not bar.disable:
                bar.set_postfix(loss=f"{loss_sum.item() / n_losses:.3f}")
            if state["batch"] % opts.checkpoint_every == 0:
                state.update(loss_sum=loss_sum.item(), n_losses=n_losses)
                save_last()
        bar.close()
        seconds = time.perf_counter() - started
        evaluated = ema.averaged if ema is not None else model  # the average is what is scored and kept
        scores = predict(evaluated, posters.dataset("val"), INFERENCE_BATCH, accelerator)["genres"]
        val_map = macro_map(scores, posters.genre_matrix[posters.parts["val"]])
        if val_map > state["best"] and accelerator.is_main_process:
            save_weights(accelerator.unwrap_model(evaluated), ckpt / "best.safetensors")
        record = {"model": name, "epoch": epoch + 1, "step": state["step"],
                  "train_loss": loss_sum.item() / max(1, n_losses),
                  "val_macro_map": val_map, "trained_share": opts.trained_share(epoch),
                  "epoch_seconds": round(seconds, 1), "train_posters_per_s": round(len(order) / seconds, 1),
                  "processes": accelerator.num_processes}
        state.update(epoch=epoch + 1, batch=0, loss_sum=0.0, n_losses=0)
        if val_map > state["best"]:
            state.update(best=val_map, best_epoch=epoch + 1, stale=0)
        else:
            state["stale"] += 1
        if accelerator.is_main_process:
            run.log_metrics(record)
        log.info("%s epoch %d: loss %.4f, val macro mAP %.4f", name, epoch + 1, record["train_loss"], val_map)
        save_last()

    load_weights(unwrapped, ckpt / "best.safetensors")
    rating_fit = {}
    if unwrapped.rating_head is not None and not rated:
        # Deterministic from the kept weights, so a run killed here fits the same head when resumed.
        feats = {p: extract_features(unwrapped, posters.dataset(p), INFERENCE_BATCH, accelerator.device, progress)
                 for p in ("train", "val")}
        rating_fit = {"rating_ridge": fit_rating_head(unwrapped, feats, posters, opts, median, robust=True)["rating_ridge"]}
        if accelerator.is_main_process:
            save_weights(unwrapped, ckpt / "best.safetensors")
    val = predict(model, posters.dataset("val"), INFERENCE_BATCH, accelerator)
    thresholds = tune_thresholds(val["genres"], posters.genre_matrix[posters.parts["val"]])
    return {"file": f"{folder}/best.safetensors", "best_epoch": state["best_epoch"],
            "val_macro_map": state["best"], "thresholds": thresholds.tolist(), "epochs_run": state["epoch"],
            **rating_thresholds(val, posters, median), **rating_fit}


def rating_thresholds(val: dict, posters: Posters, median: float | None) -> dict:
    """The predicted rating above which a poster is called well rated (its rating at or above `median`),
    tuned on validation, for the poster alone and given its labels; nothing for a model with no rating head."""
    if "rating" not in val:
        return {}
    truth = posters.ratings[posters.parts["val"]]
    return {"rating_thresholds": {case: tune_rating_threshold(val[key], truth, median)
                                  for case, key in (("alone", "rating"), ("given", "rating_given"))}}


def _set_lr(optimizer, step: int, total: int, warmup: float) -> None:
    """Linear warm-up, then cosine decay to zero, for every parameter group."""
    warm = max(1, int(total * warmup))
    factor = (step + 1) / warm if step < warm else 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


@torch.no_grad()
def predict(model, dataset: PosterDataset, batch_size: int, accelerator: Accelerator | None = None,
            progress: bool = False) -> dict[str, np.ndarray]:
    """In dataset order: `genres` (N, G) and `decades` (N, D) probabilities and, from a model with a
    rating head, `rating` (N,) from the poster alone and `rating_given` (N,) told each poster's true
    genres and decade (a decade index below 0 is not told)."""
    net = accelerator.unwrap_model(model) if accelerator is not None else model
    was_training = net.training
    net.eval()
    loader = batch_loader(dataset, batch_size)
    if accelerator is not None:
        loader = accelerator.prepare_data_loader(loader)
    device = accelerator.device if accelerator is not None else next(net.parameters()).device
    outputs: dict[str, list] = {}
    # A model accelerate did not prepare (the weight average) gets the run's precision here; outside a run,
    # the chosen one.
    precision = accelerator.autocast if accelerator is not None else lambda: inference_precision(device)
    for images, genres, decades, _ in tqdm(loader, desc="predicting", unit="batch", disable=not progress,
                                           leave=False):
        genres, decades = genres.to(device), decades.to(device)
        labels = label_vector(genres, decades, net.n_decades, torch.ones_like(decades), decades >= 0)
        with precision():
            out = net.predict(images.to(device, non_blocking=True), labels)
        if accelerator is not None:
            out = accelerator.gather_for_metrics(out)
        for key, value in out.items():
            outputs.setdefault(key, []).append(value.float().cpu())
    net.train(was_training)
    return {key: torch.cat(values).numpy() for key, values in outputs.items()}
