"""`sample` and `sample_to_folder`: posters from any generator run, streamed in batches.

A generator kind supplies a `Renderer` (its run file, the shape of one poster's noise, and a
function from noise and conditions to uint8 posters); everything else is shared here: which
conditions to make and how many of each, the noise (seeded, drawn batch by batch so that `-n` is
bounded by disk, not memory), an optional upsampler, and writing the samples folder.

Two plans: every asked-for genre with every asked-for decade, n posters each, the same noises for
every condition (so the rows of a grid differ only by what was asked for); or `like_training`, n
posters whose conditions are drawn from the training posters' own genres and decades, each with
noise of its own (what a Classification Accuracy Score trains on).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lab.errors import LabError
from lab.generation.condition import Condition, condition_tensors, parse_conditions
from lab.generation.run_info import training_conditions
from lab.generation.samples import SamplesWriter, default_samples_dir
from lab.generation.steering import Steerer
from lab.kinds import kind_of
from lab.training import inference_device, inference_precision, seeded

BATCH = 64


@dataclass
class Renderer:
    """What a generator run gives sampling."""

    info: dict  # its run file
    noise_shape: tuple[int, ...]  # of one poster's noise
    # (noise, genres, decades) -> uint8; a guided renderer also takes a Guide (lab.generation.steering)
    render: Callable[..., np.ndarray]
    conditional: bool
    summary: dict = field(default_factory=dict)  # checkpoint, step and the kind's own settings, for samples.json
    guided: bool = False  # whether a classifier can guide its sampling (--steer-scale)
    trained_steered_by: dict | None = None  # a classifier that steered its training, as samples.json records it


@dataclass
class Samples:
    """Posters in memory: uint8 (N, H, W, 3) and the condition each was asked for."""

    images: np.ndarray
    conditions: list[Condition]
    summary: dict


def load_renderer(run_dir: Path, **settings) -> Renderer:
    """The renderer of a generator run, by its kind; `settings` are the kind's own (diffusion: steps,
    guidance, sampler), and one it has not is a one-line error."""
    kind = kind_of(run_dir)
    if kind.sampler is None:
        raise LabError(f"{run_dir} is a {kind.name} run, not a generator run; give a run of "
                       "`lab train-gan` or `lab train-diffusion`")
    return kind.load("sampler")(Path(run_dir), **settings)


def plan(renderer: Renderer, run_dir: Path, genres: list[str] | None, decades: list[str] | None, n: int,
         seed: int, like_training: bool) -> tuple[list[tuple[Condition, int]], bool]:
    """[(condition, how many)] in order, and whether every condition gets the same noises."""
    if n < 1:
        raise LabError("-n must be at least 1")
    info = renderer.info
    if like_training:
        if genres or decades:
            raise LabError("--like-training draws genres and decades from the training posters; leave out "
                           "--genre and --decade")
        drawn = training_conditions(run_dir, info, n, seed)
        counts: dict[Condition, int] = {}
        for c in drawn:
            counts[c] = counts.get(c, 0) + 1
        return sorted(counts.items(), key=lambda item: (item[0].decade, item[0].genres)), False
    flt = info["filter"]
    conditions = parse_conditions(genres or flt["genres"], decades or [str(d) for d in flt["decades"]],
                                  info["genres_seen"], info["decades_seen"])
    # An unconditional generator ignores the condition, so there each condition draws noise of its own,
    # or its conditions would repeat the same posters (and score as a set of duplicates).
    return [(c, n) for c in conditions], renderer.conditional


def stream(renderer: Renderer, conditions: list[tuple[Condition, int]], seed: int, same_noise: bool,
           mix: bool, enlarge: Callable[[np.ndarray], np.ndarray] | None = None, batch_size: int = BATCH,
           steerer: Steerer | None = None) -> Iterator[tuple[list[Condition], list[int], np.ndarray]]:
    """Batches of (conditions, index of each poster within its condition, uint8 posters).

    With the same noises for every condition, each condition's noise is drawn afresh from `seed`;
    otherwise the noise runs on from one generator through the plan. With `mix`, batches fill up
    across conditions (a plan of many small conditions); without, a batch stops where its condition does.
    With a `steerer`, each poster is the best of its `select_of` draws (lab.generation.steering), a
    poster's first draw being the noise it has without one, and where the steerer guides, every draw is guided.
    """
    device = inference_device()
    info = renderer.info
    draws = steerer.select_of if steerer is not None else 1
    batch_size = max(1, batch_size // draws)  # a batch renders batch_size * draws posters
    rows = [(c, index) for c, count in conditions for index in range(count)]
    noise_source, more_source = torch.Generator().manual_seed(seed), seeded(seed, "select_of")
    start = 0
    while start < len(rows):
        end = min(start + batch_size, len(rows))
        condition, first = rows[start]
        if not mix:
            end = min(end, start + next(count for c, count in conditions if c == condition) - first)
        if same_noise and first == 0:
            noise_source, more_source = torch.Generator().manual_seed(seed), seeded(seed, "select_of")
        batch = rows[start:end]
        # A poster's first draw is its noise without a steerer; the other draws come from a stream of their own.
        noise = torch.randn(len(batch), 1, *renderer.noise_shape, generator=noise_source)
        if draws > 1:
            more = torch.randn(len(batch), draws - 1, *renderer.noise_shape, generator=more_source)
            noise = torch.cat([noise, more], 1)
        noise = noise.to(device)
        y, d = condition_tensors([c for c, _ in batch], info["genres"], info["decades"], device)
        asked = [c for c, _ in batch for _ in range(draws)]
        guide = steerer.guide(asked, seeded(seed, "steer", start)) if steerer is not None else None
        with inference_precision(device):
            images = renderer.render(noise.flatten(0, 1), y.repeat_interleave(draws, 0), d.repeat_interleave(draws, 0),
                                     *([guide] if guide is not None else []))
            if steerer is not None:
                images = steerer.select(images, [c for c, _ in batch])
            if enlarge is not None:
                images = enlarge(images)
        yield [c for c, _ in batch], [index for _, index in batch], images
        start = end


def kept_same_noise(same_noise: bool, steerer: Steerer | None) -> bool:
    """Whether the kept posters of every condition share their noises: best-of-N keeps other draws for other
    conditions, so its rows differ by noise too, and the condition effects cannot be read from them."""
    return same_noise and (steerer is None or steerer.select_of == 1)


def sample(run_dir: Path, genres: list[str] | None = None, decades: list[str] | None = None, n: int = 16,
           seed: int = 0, *, like_training: bool = False, upsampler: Path | None = None, progress: bool = False,
           steer: Path | None = None, select_of: int = 1, steer_scale: float = 0.0, **settings) -> Samples:
    """Posters in memory (see the module's docstring for the two plans); `settings` go to the renderer;
    `steer`: the classifier run that steers, `select_of`: each poster the best of that many draws by it,
    `steer_scale`: the strength of its classifier guidance."""
    renderer, enlarge, summary = _prepare(run_dir, seed, upsampler, settings)
    conditions, same_noise = plan(renderer, run_dir, genres, decades, n, seed, like_training)
    steerer = _steerer(steer, select_of, steer_scale, conditions, renderer)
    images, asked = [], []
    with tqdm(total=sum(c for _, c in conditions), desc="sampling", unit="poster", disable=not progress) as bar:
        for batch_conditions, _, batch in stream(renderer, conditions, seed, same_noise, like_training, enlarge,
                                                 steerer=steerer):
            images.append(batch)
            asked += batch_conditions
            bar.update(len(batch))
    return Samples(np.concatenate(images), asked, {**summary, "same_noise": kept_same_noise(same_noise, steerer),
                                                   "steered_by": _steered_by(renderer, steerer)})


def sample_to_folder(run_dir: Path, genres: list[str] | None = None, decades: list[str] | None = None,
                     n: int = 16, seed: int = 0, out: Path | None = None, *, like_training: bool = False,
                     upsampler: Path | None = None, progress: bool = False, steer: Path | None = None,
                     select_of: int = 1, steer_scale: float = 0.0, **settings) -> tuple[Path, dict]:
    """The samples folder (`lab sample`): PNGs written as they are made, grid.png and samples.json; returns the
    folder and what samples.json holds. The same seed and settings give the same PNGs."""
    run_dir = Path(run_dir)
    renderer, enlarge, summary = _prepare(run_dir, seed, upsampler, settings)
    conditions, same_noise = plan(renderer, run_dir, genres, decades, n, seed, like_training)
    steerer = _steerer(steer, select_of, steer_scale, conditions, renderer)
    if out is None:
        out = default_samples_dir(run_dir, [c for c, _ in conditions] if not like_training else [], seed)
    width, height = renderer.info["size"]
    scale = 2 if enlarge is not None else 1
    summary = {**summary, "size": [width * scale, height * scale], "same_noise": kept_same_noise(same_noise, steerer),
               "like_training": like_training, "steered_by": _steered_by(renderer, steerer)}
    writer = SamplesWriter(Path(out), conditions, summary)
    with tqdm(total=writer.total, desc="sampling", unit="poster", disable=not progress) as bar:
        for batch_conditions, indices, batch in stream(renderer, conditions, seed, same_noise, like_training, enlarge,
                                                       steerer=steerer):
            for condition, index, image in zip(batch_conditions, indices, batch):
                writer.add(condition, index, image)
            bar.update(len(batch))
    return Path(out), writer.close()


def _steered_by(renderer: Renderer, steerer: Steerer | None) -> dict | None:
    """What steered the posters, for samples.json: the classifier that steered the generator's training (its run
    file says so) and/or the one that steered this sampling, which `_steerer` holds to be the same run."""
    trained, sampled = renderer.trained_steered_by, steerer.summary() if steerer else None
    if not (trained and sampled):
        return trained or sampled
    levers = {k: v for k, v in {**trained, **sampled}.items() if k not in ("classifier", "lever")}
    return {"classifier": sampled["classifier"], "lever": "+".join(levers), **levers}


def _steerer(steer: Path | None, select_of: int, scale: float, conditions: list[tuple[Condition, int]],
             renderer: Renderer) -> Steerer | None:
    if steer is None:
        if select_of != 1 or scale:
            raise LabError(f"{'--select-of' if select_of != 1 else '--steer-scale'} needs --steer CLASSIFIER_RUN: "
                           "the classifier that steers")
        return None
    steerer = Steerer(steer, select_of, scale)
    if scale and not renderer.guided:
        raise LabError("--steer-scale (classifier guidance) is for diffusion runs; steer a GAN with --select-of")
    trained = renderer.trained_steered_by
    if trained and Path(trained["classifier"]).resolve() != Path(steer).resolve():
        raise LabError(f"this run was trained steered by {trained['classifier']}; steer its sampling with that "
                       "classifier run or with none, so that one classifier is known to have steered the samples")
    steerer.check([c for c, _ in conditions])
    return steerer


def _prepare(run_dir: Path, seed: int, upsampler: Path | None, settings: dict):
    renderer = load_renderer(run_dir, **settings)
    enlarge, enlarged = None, {}
    if upsampler is not None:
        kind = kind_of(upsampler)
        if kind.enlarger is None:
            raise LabError(f"--upsampler {upsampler} is a {kind.title} run, not an upsampler run")
        enlarge, enlarged = kind.load("enlarger")(Path(upsampler), tuple(renderer.info["size"]))
    summary = {"run": str(Path(run_dir).resolve()), **renderer.summary, "seed": seed,
               "conditional": renderer.conditional, "size": renderer.info["size"], **enlarged}
    return renderer, enlarge, summary
