"""The `lab` command line: parse options, call the library, print. Nothing else lives here."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from lab.errors import LabError

app = typer.Typer(help="Poster Lab: classify movie posters by genre and decade, generate new ones, "
                       "and score what was generated.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
data_app = typer.Typer(help="Check, import and make poster datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data", help="Check, import and make poster datasets.")

DataOpt = Annotated[Path, typer.Option(
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
DEFAULT_DATA = Path("data/posters")


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
        "--csv", help="Any CSV; name its columns with --id-col, --title-col, --year-col, --genre-col.")] = None,
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
    download: Annotated[bool, typer.Option(
        "--download", help="Download posters missing from --images from their URL; rerun to resume.")] = False,
    workers: Annotated[int, typer.Option("--workers", help="Parallel downloads at most.")] = 8,
) -> None:
    """Build a dataset folder from a Kaggle MovieGenre.csv or any CSV plus a folder of images."""
    from lab.data.importer import KAGGLE, Columns, import_dataset
    if (kaggle_csv is None) == (csv is None):
        raise LabError("give exactly one of --kaggle-csv FILE or --csv FILE")
    columns = KAGGLE if kaggle_csv else Columns(id=id_col, title=title_col, genres=genre_col, year=year_col,
                                                image=image_col, url=url_col, genre_sep=genre_sep)
    report = import_dataset(kaggle_csv or csv, images, out, columns, download=download, workers=workers)
    typer.echo(f"imported {report.kept} posters into {out} ({report.downloaded} downloaded), "
               f"{len(report.skipped)} rows skipped")
    for s in report.skipped:
        typer.echo(f"  {s}")
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


def _not_implemented(name: str, issue: int, summary: str, trains: bool) -> None:
    def command(data: DataOpt = DEFAULT_DATA, genre: GenreOpt = None, decade: DecadeOpt = None,
                out: OutOpt = None, seed: SeedOpt = 0) -> None:
        raise LabError(f"`lab {name}` is not implemented yet (issue {issue})")

    def reader() -> None:
        raise LabError(f"`lab {name}` is not implemented yet (issue {issue})")

    chosen = command if trains else reader
    chosen.__doc__ = f"{summary} (not implemented yet)"
    app.command(name)(chosen)


_not_implemented("train-classifier", 3, "Fine-tune an ImageNet backbone to predict genres and decade.", True)
_not_implemented("evaluate", 3, "Evaluate a classifier run against baselines on its test posters.", False)
_not_implemented("predict", 3, "Print the genres and decade a classifier run sees in posters.", False)
_not_implemented("train-gan", 4, "Train a conditional poster GAN for genres and decades.", True)
_not_implemented("sample", 4, "Generate posters for a genre and decade from a GAN run.", False)
_not_implemented("score-samples", 5, "Score generated posters: genre fidelity, FID and KID.", False)
_not_implemented("demo", 5, "Run the whole lab end to end on a dataset.", False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: a LabError is the user's to fix, so it is one line on stderr and exit status 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        app(args=argv, prog_name="lab")
    except LabError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
