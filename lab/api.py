"""The lab's Python API, for notebooks and scripts; `import lab` re-exports it.

    import lab
    run = lab.train_gan(data="../shared/posters", recipe=lab.recipe_path("gan-quick"), out="runs/my-gan")
    posters = lab.sample(run, genres=["Horror"], decades=["1980"], n=8)   # uint8 (8, H, W, 3) and conditions
    lab.sample(run, genres=["Horror"], decades=["1980"], n=64, out="runs/my-gan/samples/horror")
    scores = lab.score_samples("runs/my-gan/samples/horror", classifier="runs/my-classifier")

Each training function takes the same options as its recipe keys (docs/recipes.md) as keyword
arguments; it creates the run folder only once every check has passed, and releases the run's lock
when it returns. Errors a user can fix are `lab.LabError`.
"""

from __future__ import annotations

from pathlib import Path

from lab.errors import LabError
from lab.generation.sampling import Samples
from lab.kinds import RunKind, kind_of
from lab.runs import Run

__all__ = ["LabError", "Samples", "evaluate", "grad_cam", "list_runs", "nearest_training_posters", "open_classifier",
           "open_run", "predict", "recipe_path", "report", "run_info", "run_kind", "sample", "score_samples",
           "train_classifier", "train_diffusion", "train_gan", "train_upsampler"]


def _train(kind: str, data, recipe, out, resume: bool, progress: bool, options: dict) -> Run:
    from lab.launch import train
    flags = {**options, "data": str(data) if data is not None else None}
    run, _ = train(kind, recipe=Path(recipe) if recipe else None, flags=flags, out=Path(out) if out else None,
                   resume=resume, progress=progress)
    return run


def train_classifier(data=None, *, recipe=None, out=None, resume: bool = False, progress: bool = True,
                     **options) -> Run:
    """Fine-tune a genre/decade classifier (with its baselines); returns the finished run."""
    return _train("classifier", data, recipe, out, resume, progress, options)


def train_gan(data=None, *, recipe=None, out=None, resume: bool = False, progress: bool = True, **options) -> Run:
    """Train a conditional poster GAN; returns the finished run."""
    return _train("gan", data, recipe, out, resume, progress, options)


def train_diffusion(data=None, *, recipe=None, out=None, resume: bool = False, progress: bool = True,
                    **options) -> Run:
    """Train a conditional poster diffusion model; returns the finished run."""
    return _train("diffusion", data, recipe, out, resume, progress, options)


def train_upsampler(data=None, *, recipe=None, out=None, resume: bool = False, progress: bool = True,
                    **options) -> Run:
    """Train a 2x poster upsampler (a cascade's second stage); returns the finished run."""
    return _train("upsampler", data, recipe, out, resume, progress, options)


def recipe_path(name: str) -> Path:
    """A recipe that ships with the lab, by name ("gan-quick")."""
    from lab.recipes import shipped_path
    return shipped_path(name)


def open_run(path) -> Run:
    """A run folder, checked: its options, metrics (`.metrics()`) and whether it has finished."""
    return Run.open(Path(path))


def run_kind(run) -> RunKind:
    """What kind of run a folder holds (lab.kinds)."""
    return kind_of(_path(run))


def run_info(run) -> dict:
    """What a finished run's run file holds (a generator's: its genres, decades, size and model)."""
    from lab.generation.run_info import read_info
    kind = kind_of(_path(run))
    return read_info(_path(run), kind.run_file, kind.name)


def list_runs(folder="runs") -> list:
    """`lab runs`: every run in a folder, with its kind, status, progress, headline figure and age."""
    from lab.catalog import list_runs as runs
    return runs(Path(folder))


def sample(run, genres: list[str] | None = None, decades: list[str] | None = None, n: int = 16, seed: int = 0, *,
           out=None, like_training: bool = False, upsampler=None, progress: bool = False, steer=None,
           select_of: int = 1, steer_scale: float = 0.0, **settings):
    """Posters from a generator run. Without `out`: a `Samples` (uint8 images (N, H, W, 3), each one's
    condition); with `out`: the samples folder is written, and (its path, what samples.json holds) returned.
    `steer`: a classifier run that steers, `select_of`: each poster the best of that many draws by it,
    `steer_scale`: its classifier guidance (diffusion runs).
    `settings`: a diffusion run's steps, guidance and sampler."""
    from lab.generation.sampling import sample as in_memory, sample_to_folder
    upsampler = _path(upsampler) if upsampler is not None else None
    steering = {"steer": _path(steer) if steer is not None else None, "select_of": select_of,
                "steer_scale": steer_scale}
    if out is None:
        return in_memory(_path(run), genres, decades, n, seed, like_training=like_training, upsampler=upsampler,
                         progress=progress, **steering, **settings)
    return sample_to_folder(_path(run), genres, decades, n, seed, Path(out), like_training=like_training,
                            upsampler=upsampler, progress=progress, **steering, **settings)


def score_samples(samples, classifier, *, real=None, extractor: str = "auto", cas: bool = False, judge=None,
                  progress: bool = False) -> dict:
    """`lab score-samples`: the scores of a samples folder (also written to its scores.json); `judge`: another
    classifier run to read the genres and decades."""
    from lab.scoring.score import score_samples as score
    report, _ = score(Path(samples), _path(classifier), Path(real) if real else None, extractor=extractor, cas=cas,
                      judge=_path(judge) if judge is not None else None, progress=progress)
    return report


def predict(run, images: list, *, genres: list[str] | None = None, year: int | None = None) -> list:
    """Genres, decade and rating a classifier run sees in each poster file (the rating told the film's
    `genres` and `year` where given)."""
    from lab.classifier.inference import predict_files
    return predict_files(_path(run), [str(p) for p in images], genres, year)


def open_classifier(run):
    """A classifier run loaded once, for many predictions: `.decode(file)`, `.predict_files(files)`,
    `.predict_pixels(uint8 (N, H, W, 3))`, the same figures as `predict`."""
    from lab.classifier.inference import TrainedClassifier
    return TrainedClassifier(_path(run))


def grad_cam(classifier, poster, genre: str | None = None):
    """(the poster with the Grad-CAM heatmap of `genre` laid over it, that genre) for a poster (H, W, 3) at
    the size of `classifier` (`open_classifier`); no genre: the poster's most probable one."""
    from lab.classifier.gradcam import poster_heatmap
    return poster_heatmap(classifier, poster, genre)


def nearest_training_posters(run):
    """The training posters of a generator run, with `.find(uint8 posters)`: each one's nearest training
    poster, in the memorisation check's pixel space (`.images`, `.ids`)."""
    from lab.scoring.memorisation import NearestTrainingPoster
    return NearestTrainingPoster.of_run(_path(run), tuple(run_info(run)["size"]))


def evaluate(run, data=None) -> dict:
    """A classifier run and its baselines on its test split (or every poster of `data`)."""
    from lab.classifier.evaluate import evaluate_run
    report, _ = evaluate_run(_path(run), Path(data) if data else None, progress=False)
    return report


def report(run, out=None) -> Path:
    """Write a run's HTML report; returns its path."""
    from lab.report import write_report
    return write_report(_path(run), Path(out) if out else None, progress=False)


def _path(run) -> Path:
    return run.path if isinstance(run, Run) else Path(run)
