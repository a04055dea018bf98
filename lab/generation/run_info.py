"""What a generator run records in its run file (gan.json, diffusion.json): the vocabularies its
conditions come from, what it saw in training, its size and model, and the conditions of its grids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from lab.checkpoint import load_weights, read_json, save_json
from lab.data.filters import PosterFilter, apply_filter
from lab.data.images import parse_size
from lab.data.metadata import read_dataset
from lab.data.split import load_split, part_indices
from lab.data.poster_dataset import Posters, open_posters, open_run_posters
from lab.errors import LabError
from lab.generation.condition import Condition
from lab.kinds import kind_of
from lab.runs import Run
from lab.training import inference_device


def grid_conditions(posters: Posters, rows: np.ndarray, most: int = 8) -> list[Condition]:
    """The training set's most common genres, each in its most common decade and in the earliest
    decade that holds at least 5% of the posters (old and new posters differ most)."""
    genre_counts = posters.genre_matrix[rows].sum(0)
    decade_counts = np.bincount(posters.decade_index[rows], minlength=len(posters.decades))
    genres = [posters.genres[j] for j in np.argsort(-genre_counts, kind="stable")[:most // 2] if genre_counts[j]]
    common = int(decade_counts.argmax())
    early = next(j for j, n in enumerate(decade_counts) if n >= 0.05 * len(rows))
    decades = [posters.decades[j] for j in sorted({early, common})]
    return [Condition((g,), d) for g in genres for d in decades]


def start_info(path: Path, posters: Posters, size: tuple[int, int], model: dict, init_from: str | None,
               parent: dict | None) -> dict:
    """The run file at `path` if the run has one (a resume), else a new one. A run fine-tuned from
    `parent` (the run file of `init_from`) knows every genre and decade its parent saw, and must have
    its parent's vocabularies, size and model."""
    if path.exists():
        return json.loads(path.read_text())
    train = posters.parts["train"]
    seen_genres = {posters.genres[j] for j in np.flatnonzero(posters.genre_matrix[train].sum(0))}
    seen_decades = {posters.decades[j] for j in np.unique(posters.decade_index[train])}
    if parent:
        seen_genres |= set(parent["genres_seen"])
        seen_decades |= set(parent["decades_seen"])
    info = {"genres": posters.genres, "decades": posters.decades,
            "genres_seen": [g for g in posters.genres if g in seen_genres],
            "decades_seen": sorted(seen_decades), "size": list(size), "model": model,
            "filter": posters.filter.to_dict(), "dataset": posters.fingerprint, "n_train": len(train),
            "init_from": init_from, "grid": [c.to_dict() for c in grid_conditions(posters, train)]}
    if parent:
        for key in ("genres", "decades", "size", "model"):
            if parent[key] != info[key]:
                raise LabError(f"--init-from {init_from}: its {key} ({parent[key]}) differ from this run's "
                               f"({info[key]}); use the same dataset, --size and model options")
    return info


def open_training_posters(opts, run: Run, run_file: str, model: dict, parent: dict | None,
                          is_main_process: bool, progress: bool) -> tuple[Posters, dict]:
    """What a generator trains on, and its run file (see `start_info`), both written by the main process.

    `opts` are the trainer's options (data options, size, split_seed, init_from). A run fine-tuned from
    `parent` takes the parent's split until it has its own, so the parent's test posters stay unseen.
    """
    split_file = run.path / "split.json"
    if not split_file.exists() and parent:
        split_file = Path(opts.init_from) / "split.json"
    size = parse_size(opts.size)
    posters = open_posters(opts.data, opts.poster_filter, size, split_seed=opts.split_seed,
                           split_file=split_file if split_file.exists() else None, progress=progress)
    if not len(posters.parts["train"]):
        raise LabError("the train part of the split is empty: too few posters pass the filters")
    info = start_info(run.path / run_file, posters, size, model, opts.init_from, parent)
    if is_main_process:
        posters.save_split(run.path, opts.split_seed)
        save_json(info, run.path / run_file)
    return posters, info


def training_conditions(run_dir: Path, info: dict, n: int, seed: int) -> list[Condition]:
    """The genres and decades of `n` posters drawn (with replacement, by `seed`) from the run's training
    posters, in the vocabularies it knows; only the metadata is read, no image."""
    run = Run.open(run_dir)
    options = run.options
    table, _ = apply_filter(read_dataset(options["data"]), PosterFilter.from_dict(info["filter"]))
    train = part_indices(table, load_split(Path(run_dir) / "split.json"))["train"]
    if not len(train):
        raise LabError(f"{run_dir}: none of its training posters is in {options['data']} any more")
    drawn = np.random.default_rng(seed).choice(train, size=n)
    rows = table.posters.iloc[drawn]
    seen = set(info["genres_seen"])
    return [Condition(tuple(g for g in genres if g in seen), int(decade))
            for genres, decade in zip(rows["genres"], rows["decade"])]


def open_generator_posters(run_dir: Path, size: tuple[int, int], *, progress: bool = True) -> Posters:
    """The dataset a generator run trained on, with the filter its run file records and its split, at `size`."""
    run = Run.open(run_dir)
    run_file = Path(run_dir) / kind_of(run_dir).run_file
    flt = PosterFilter()
    if run_file.is_file():
        saved = read_json(run_file, "run file", "resume the run that wrote it").get("filter")
        flt = PosterFilter.from_dict(saved) if saved else PosterFilter()
    return open_run_posters(run, size, flt, progress=progress)


def read_info(run_dir: Path, run_file: str, kind: str) -> dict:
    """A generator run's run file; a folder without one is a one-line error saying it is not a `kind` run."""
    Run.open(run_dir)
    path = Path(run_dir) / run_file
    if not path.is_file():
        raise LabError(f"{run_dir} has no {run_file}: it is not a {kind} run")
    return json.loads(path.read_text())


def load_parent_weights(init_from: str, checkpoints: str, networks: dict) -> None:
    """Start a fine-tuned run's networks (checkpoint name: module) from its parent run's checkpoints."""
    for name, net in networks.items():
        load_weights(net, Path(init_from) / checkpoints / f"{name}.safetensors")


def load_for_sampling(model: torch.nn.Module, weights: Path) -> tuple[torch.nn.Module, torch.device, int]:
    """A generator run's sampling weights (its EMA), in eval mode on the inference device, and the step
    they were saved at."""
    if not weights.is_file():
        raise LabError(f"{weights.parent.parent} has no checkpoint yet ({weights}); train it first")
    step = int(load_weights(model, weights).get("step", -1))
    device = inference_device()
    return model.eval().to(device), device, step
