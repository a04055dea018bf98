"""The generator part of a report, for any generator run (GAN, diffusion model, upsampler): how training
went (grids over time, loss curves) and, for a generator of posters, how its latest scored samples
compare with real posters: scores in both feature spaces, condition effects, memorisation (each
sample closest to a training poster beside it), CAS, and samples beside real posters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lab.checkpoint import read_json
from lab.data.poster_dataset import open_posters, open_run_posters
from lab.errors import LabError
from lab.generation.condition import Condition
from lab.generation.samples import SAMPLES_FILE, steering_levers
from lab.kinds import kind_of
from lab.report import plots
from lab.report.blocks import Figure, Gallery, Missing, Part, Row, Section, Table, Tile
from lab.report.embed import file_uri, image_uri
from lab.runs import Run
from lab.scoring.fidelity import missing_note
from lab.scoring.score import SCORES_FILE

STRIP = 6  # training grids shown, evenly spaced from the first to the last
GRID_WIDTH = 360
SHOWN = 8  # samples and real posters per condition; most and least genre-like samples
POSTER_WIDTH = 96


def generator_page(run_dir: Path, progress: bool = True) -> list[Part]:
    """The page of a generator run of its own."""
    return [generator_part(run_dir, progress=progress)]


def generator_part(run_dir: Path, part_id: str | None = None, samples_dirs: tuple[Path, ...] = (),
                   classifier_run: Path | None = None, progress: bool = True) -> Part:
    """`samples_dirs`: folders of this run's samples outside RUN/samples (a demo keeps its own);
    `classifier_run`: named in the command that scores them."""
    run_dir = Path(run_dir)
    run = Run.open(run_dir)
    kind = kind_of(run_dir)
    part_id = part_id or kind.name
    title = kind.title[0].upper() + kind.title[1:]
    if run.options.get("conditional") is False:
        title = title.replace("Conditional", "Unconditional")
    part = Part(part_id, title, str(run_dir))
    add = part.sections.append
    resume = f"lab train-{kind.name} --out {run_dir} --resume"
    run_file = run_dir / kind.run_file
    info = read_json(run_file, "run file", f"resume it: {resume}") if run_file.is_file() else None
    add(_grids(run_dir, part_id, resume))
    add(_losses(run, part_id, resume))
    if info is None:
        add(Section(f"{part_id}-scores", "Scores of the samples", [Missing(
            f"the trained {kind.title} ({kind.run_file}): its training has not finished", resume)]))
        return part
    if kind.sampler is None:  # an upsampler: what it does shows in its grids
        return part
    folders = sorted({p.parent for p in run_dir.glob(f"samples/*/{SAMPLES_FILE}")} |
                     {Path(d) for d in samples_dirs if (Path(d) / SAMPLES_FILE).is_file()})
    scored = [d for d in folders if (d / SCORES_FILE).is_file()]
    if not scored:
        if folders:
            missing = Missing(f"scores of the samples in {folders[-1]}",
                              f"lab score-samples {folders[-1]} --classifier {classifier_run or 'CLASSIFIER_RUN'}")
        else:
            genre = (info["filter"]["genres"] or info["genres_seen"])[0]
            decade = (info["filter"]["decades"] or info["decades_seen"])[-1]
            missing = Missing("generated samples, and their scores",
                              f"lab sample {run_dir} --genre {genre} --decade {decade}, then lab score-samples "
                              f"SAMPLES_DIR --classifier {classifier_run or 'CLASSIFIER_RUN'}")
        add(Section(f"{part_id}-scores", "Scores of the samples", [missing]))
        return part
    latest = max(scored, key=lambda d: (d / SCORES_FILE).stat().st_mtime)
    scores = read_json(latest / SCORES_FILE, "scores file",
                       f"score the samples again with `lab score-samples {latest} --classifier CLASSIFIER_RUN`")
    add(_score_table(scores, latest, part_id))
    add(_memorisation(run, scores, latest, part_id, progress))
    add(_samples_beside_real(run, scores, latest, part_id, progress))
    add(_most_and_least_genre_like(scores, latest, part_id))
    return part


def _grids(run_dir: Path, part_id: str, resume: str) -> Section:
    section = Section(f"{part_id}-grids", "Training grids over time",
                      intro="The same fixed noise at each grid step: each row a condition.")
    grids = sorted((run_dir / "grids").glob("step-*.png"))
    if not grids:
        section.blocks.append(Missing("training grids (grids/step-*.png): training has not reached its first grid",
                                      resume))
        return section
    shown = [grids[k] for k in sorted(set(np.linspace(0, len(grids) - 1, min(STRIP, len(grids))).round().astype(int)))]
    section.blocks.append(Gallery(f"{len(shown)} of {len(grids)} grids", [
        Tile(file_uri(path, GRID_WIDTH), path.name, f"step {int(path.stem.split('-')[1])}") for path in shown]))
    return section


def _losses(run: Run, part_id: str, resume: str) -> Section:
    section = Section(f"{part_id}-losses", "Loss curves")
    records = [r for r in run.metrics() if "d_loss" in r or "loss" in r]
    if not records:
        section.blocks.append(Missing("loss curves: metrics.jsonl has no step yet", resume))
        return section
    steps = [r["step"] for r in records]

    def line(key):
        return steps, [r[key] for r in records]

    if "loss" in records[0]:  # a diffusion run or an upsampler
        panels = {"training loss": {"loss": line("loss")},
                  "training posters/s": {"posters/s": line("posters_per_s")}}
        if "lr" in records[0]:
            panels["learning rate"] = {"lr": line("lr")}
    else:
        panels = {"hinge losses": {"D": line("d_loss"), "G": line("g_loss")},
                  "D's mean score": {"real posters": line("d_real"), "generated": line("d_fake")},
                  "training posters/s": {"posters/s": line("posters_per_s")}}
    section.blocks.append(Figure(plots.curves(panels, "step"), "loss curves", "From metrics.jsonl."))
    return section


def _label(entry: dict) -> str:
    return Condition.from_dict(entry).label()


def _num(v, fmt):
    return "-" if v is None else format(v, fmt)


def _score_table(scores: dict, folder: Path, part_id: str) -> Section:
    tag, free = f"[{scores['extractor']}]", scores.get("independent")

    def row(label, e):
        r, i = e["real"], e.get("independent") or {}
        return [label, str(e["n"]), _num(e["genre_fidelity"], ".2f"), _num(e["decade_acc"], ".2f"),
                _num(e["fid"], ".1f"), _num(e["kid"], ".3f"), _num(e["precision"], ".2f"), _num(e["recall"], ".2f"),
                *([_num(i.get("fid"), ".2f"), _num(i.get("precision"), ".2f"), _num(i.get("recall"), ".2f")]
                  if free else []),
                str(r["n"]), _num(r["genre_fidelity"], ".2f")]

    columns = ["condition", "samples", "genre fidelity", "decade acc.", f"FID{tag}", f"KID{tag}", "precision",
               "recall", *([f"FD[{free}]", f"precision[{free}]", f"recall[{free}]"] if free else []),
               "real posters", "real: fidelity"]
    rows = [row(_label(c), c) for c in scores["conditions"]] + [row("overall", scores["overall"])]
    overall = scores["overall"]
    blocks = [Table(columns, rows, (
        f"{folder / SCORES_FILE}, judged by {scores.get('judge', scores['classifier'])}. Genre fidelity: share of samples whose "
        "asked-for genre is in the classifier's top 3; real: the same for real posters of the condition, the "
        f"ceiling. FID/KID and precision/recall on {scores['extractor']} features"
        + (f"; FD[{free}] on a CNN trained from scratch on posters, with no ImageNet in it" if free else "")
        + f". {missing_note(scores['conditions'] + [overall])}"))]
    effects = [[name, _num(overall.get(key), ".2f") + (f" ({overall[f'{key}_blurred']:.2f} blurred to a quarter)"
                                                        if overall.get(f"{key}_blurred") is not None else "")]
               for name, key in (("condition effect", "condition_effect"), ("genre effect (same decade)", "genre_effect"),
                                 ("decade effect (same genres)", "decade_effect"))]
    pick = overall.get("genre_choice")
    if pick:
        effects.append([f"genre signal: the judge's pick among {', '.join(pick['genres'])}, prior taken out",
                        f"{_num(pick['signal'], '.2f')} ({pick['samples']:.1%} right; real posters {pick['real']:.1%}, "
                        f"chance {pick['chance']:.1%})"])
    steering = scores.get("steering")
    if steering:
        by_steerer = steering.get("steerer")
        effects.append([f"steered by {steering['classifier']} ({steering_levers(steering)})",
                        "the judge is the steerer: its figures rate its own picks" if steering["judge_is_steerer"]
                        else "-" if by_steerer is None else
                        f"steerer's fidelity {_num(by_steerer['genre_fidelity'], '.2f')}, minus the judge's "
                        f"{_num(steering['fidelity_gap'], '.2f')}"])
    cas = scores.get("cas")
    if cas:
        effects += [["CAS: macro mAP trained on samples / on real posters",
                     f"{cas['generated']['macro_map']:.3f} / {cas['real']['macro_map']:.3f} (ratio "
                     f"{cas['map_ratio']:.2f}; chance {cas['chance']['macro_map']:.3f})"],
                    ["CAS: decade accuracy trained on samples / on real posters",
                     f"{cas['generated']['decade_acc']:.3f} / {cas['real']['decade_acc']:.3f}"]]
    blocks.append(Table(["figure", "value"], effects, (
        "Condition effects: how much posters made from the same noise differ between conditions, against how much "
        "one condition's posters differ between noises (0: the condition changes nothing). CAS: a small CNN "
        "trained on the samples alone, tested on real test posters, against the same trained on as many real "
        "posters.")))
    return Section(f"{part_id}-scores", "Scores of the latest samples", blocks)


def _memorisation(run: Run, scores: dict, folder: Path, part_id: str, progress: bool) -> Section:
    section = Section(f"{part_id}-memorisation", "Has it memorised training posters?")
    memo = scores.get("memorisation")
    if not memo:
        section.blocks.append(Missing("the memorisation check: the samples were scored without the generator "
                                      "run's training posters", None))
        return section
    section.intro = (f"Memorised: {memo['share']:.1%} of the samples, against {memo['real_test_share']:.1%} of real "
                     f"test posters that no generator saw. A poster counts as memorised when {memo['rule']}. The "
                     "samples closest to a training poster, each beside it:")
    summary = read_json(folder / SAMPLES_FILE, "samples file", "make the samples again with `lab sample`")
    try:
        posters = open_run_posters(run, tuple(summary["size"]), progress=progress)
    except LabError as e:
        section.blocks.append(Missing(f"the training posters to show ({e})", None))
        return section
    by_id = {i: k for k, i in enumerate(posters.table.posters["imdb_id"])}
    tiles = []
    for entry in memo["closest"]:
        k = by_id.get(entry["nearest_train_id"])
        tiles.append(Tile(file_uri(folder / entry["file"], POSTER_WIDTH), entry["file"],
                          f"{entry['file']}\ncloseness {entry['closeness']:.2f} (below 1: memorised)"))
        if k is not None:
            title = posters.table.posters["title"].iloc[k]
            tiles.append(Tile(image_uri(posters.images[k], POSTER_WIDTH), title, f"nearest training poster:\n{title}"))
    section.blocks.append(Gallery("sample | its nearest training poster", tiles))
    return section


def _samples_beside_real(run: Run, scores: dict, folder: Path, part_id: str, progress: bool) -> Section:
    section = Section(f"{part_id}-samples", "Samples beside real posters of the same condition")
    summary = read_json(folder / SAMPLES_FILE, "samples file", "make the samples again with `lab sample`")
    size = tuple(summary["size"])
    real = scores["real"]
    try:
        if real["part"] == "test":
            posters = open_run_posters(run, size, progress=progress)
            rows = posters.parts["test"]
        else:
            posters = open_posters(real["data"], size=size, progress=progress)
            rows = np.arange(len(posters.table))
    except LabError as e:
        section.blocks.append(Missing(f"the real posters to compare with ({e})", None))
        return section
    table = posters.table.posters.iloc[rows]
    for c in scores["conditions"]:
        files = [r["file"] for r in summary["images"] if r["genres"] == c["genres"] and r["decade"] == c["decade"]]
        match = np.flatnonzero([all(g in gs for g in c["genres"]) and d == c["decade"]
                                for gs, d in zip(table["genres"], table["decade"])])[:SHOWN]
        generated = Gallery("generated", [Tile(file_uri(folder / f, POSTER_WIDTH), f, f) for f in files[:SHOWN]])
        reals = Gallery(f"real {real['part']} posters", [
            Tile(image_uri(posters.images[rows[k]], POSTER_WIDTH), table["title"].iloc[k],
                 f"{table['title'].iloc[k]} ({table['year'].iloc[k]})") for k in match])
        section.blocks.append(Row([generated, reals], _label(c)))
    return section


def _most_and_least_genre_like(scores: dict, folder: Path, part_id: str) -> Section:
    images = scores["images"]
    likeness = [float(np.mean([r["predicted_genres"][g] for g in r["genres"]])) for r in images]
    order = np.argsort(likeness, kind="stable")[::-1]

    def tiles(rows):
        out = []
        for k in rows:
            r = images[k]
            top = " · ".join(f"{g} {p:.0%}" for g, p in list(r["predicted_genres"].items())[:3])
            out.append(Tile(file_uri(folder / r["file"], POSTER_WIDTH), r["file"],
                            f"asked: {_label(r)}\np(asked) {likeness[k]:.0%}\n{top}"))
        return out

    return Section(f"{part_id}-genre-likeness", "Samples most and least like their genre", [Row([
        Gallery("most like their genre", tiles(order[:SHOWN])),
        Gallery("least like their genre", tiles(order[::-1][:SHOWN]))])],
        intro="By the classifier's mean probability of the genres each sample was asked for.")
