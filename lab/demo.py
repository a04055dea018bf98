"""`run_demo`: the whole lab end to end on one dataset, with the shipped quick recipes.

split -> train-classifier -> evaluate -> train a generator -> sample -> score-samples, each step the
same library call its command makes, each output in its own folder under one demo folder. Every
option is checked before the demo folder is made. With `resume`, finished steps are kept and the
interrupted one goes on from its checkpoint.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lab.checkpoint import read_json, save_json
from lab.errors import LabError
from lab.kinds import KIND_KEY, get
from lab.launch import check, train
from lab.recipes import resolve_options, shipped_path
from lab.runs import Run

GENERATORS = {"gan": "gan-demo", "diffusion": "diffusion-quick"}  # generator -> its shipped quick recipe
CLASSIFIER_RECIPE = "classifier-quick"


@dataclass
class DemoOptions:
    data: str = "data/posters"
    seed: int = 0
    samples_per_condition: int = 32
    generator: str = "gan"
    classifier_recipe: str = ""  # a recipe file; "": the shipped classifier-quick
    generator_recipe: str = ""  # "": the generator's shipped quick recipe
    pretrained: bool = True  # False: the classifier's backbone from scratch


def run_demo(data: Path, out: Path | None = None, *, resume: bool = False, samples_per_condition: int = 32,
             seed: int = 0, generator: str = "gan", classifier_recipe: Path | None = None,
             generator_recipe: Path | None = None, pretrained: bool = True, say=print) -> dict:
    """Run every step into `out` (or go on with it, `resume`); `say` reports each step as it finishes.
    Returns the headline figures, also written to headline.json."""
    if resume:
        demo = Run.create(out, "", {}, resume=True)
        opts = DemoOptions(**{k: v for k, v in demo.options.items() if k != KIND_KEY})
    else:
        opts = DemoOptions(str(data), seed, samples_per_condition, generator, str(classifier_recipe or ""),
                           str(generator_recipe or ""), pretrained)
    if opts.generator not in GENERATORS:
        raise LabError(f"--generator must be one of {', '.join(GENERATORS)}, not {opts.generator!r}")
    recipes = {"classifier": Path(opts.classifier_recipe or shipped_path(CLASSIFIER_RECIPE)),
               opts.generator: Path(opts.generator_recipe or shipped_path(GENERATORS[opts.generator]))}
    flags = {kind: {"data": opts.data, "seed": opts.seed} for kind in recipes}
    if not opts.pretrained:
        flags["classifier"]["weights"] = "none"
    for kind, recipe in recipes.items():  # every mistake shows before a folder is made
        check(get(kind), resolve_options(get(kind).load("options"), recipe, flags[kind]))
    if not resume:
        demo = Run.create(out, "demo", {KIND_KEY: "demo", **asdict(opts)})
    say(f"demo folder: {demo.path}")
    started = time.perf_counter()

    def step(message: str) -> None:
        say(f"[{time.perf_counter() - started:6.0f} s] {message}")

    def trained(kind: str) -> tuple[Path, dict]:
        folder = demo.path / kind
        run_file = folder / get(kind).run_file
        if (folder / "finished.json").is_file() and run_file.is_file():
            return folder, read_json(run_file, "run file", f"delete {folder} and resume the demo")
        step(f"training the {get(kind).title} ({recipes[kind].name}) in {folder}")
        if (folder / "options.json").is_file():  # started before: it goes on with its own options
            _, info = train(kind, out=folder, resume=True)
        else:
            _, info = train(kind, recipe=recipes[kind], flags=flags[kind], out=folder)
        return folder, info

    clf_run, clf_info = trained("classifier")
    from lab.classifier.evaluate import evaluate_run
    evaluation = clf_run / "evaluation-test.json"
    report = read_json(evaluation, "evaluation", "") if evaluation.is_file() else evaluate_run(clf_run)[0]
    step(f"classifier test macro mAP {report['macro_map']:.3f} (genre prior "
         f"{report['baselines']['prior']['macro_map']:.3f}); evaluation in {evaluation}")

    gen_run, gen_info = trained(opts.generator)
    step(f"{get(opts.generator).title} trained {gen_info['steps']} steps; grids in {gen_run / 'grids'}")

    from lab.generation.samples import SAMPLES_FILE
    from lab.generation.sampling import sample_to_folder
    samples_dir = demo.path / "samples"
    if not (samples_dir / SAMPLES_FILE).is_file():
        shutil.rmtree(samples_dir, ignore_errors=True)  # an interrupted sampling starts again
        genres = sorted({g for c in gen_info["grid"] for g in c["genres"]}, key=gen_info["genres"].index)
        decades = sorted({c["decade"] for c in gen_info["grid"]})
        _, summary = sample_to_folder(gen_run, genres, [str(d) for d in decades], opts.samples_per_condition,
                                      opts.seed, samples_dir)
        step(f"{len(summary['images'])} posters for {len(summary['conditions'])} genre-decade conditions in "
             f"{samples_dir}")

    from lab.scoring.score import SCORES_FILE, score_samples
    scores = read_json(samples_dir / SCORES_FILE, "scores", "") if (samples_dir / SCORES_FILE).is_file() \
        else score_samples(samples_dir, clf_run)[0]
    overall, tag = scores["overall"], scores["extractor"]
    step(f"scores in {samples_dir / SCORES_FILE}")
    independent = overall.get("independent") or {}
    memorised = (scores.get("memorisation") or {}).get("share")
    headline = {"classifier_test_macro_map": report["macro_map"],
                "prior_test_macro_map": report["baselines"]["prior"]["macro_map"],
                "classifier_val_macro_map": clf_info["models"]["classifier"]["val_macro_map"],
                "genre_fidelity": overall["genre_fidelity"], "real_genre_fidelity": overall["real"]["genre_fidelity"],
                "extractor": tag, "fid": overall["fid"], "kid": overall["kid"],
                "independent": scores.get("independent"), "fd_independent": independent.get("fid"),
                "precision": overall["precision"], "recall": overall["recall"],
                "condition_effect": overall.get("condition_effect"), "genre_effect": overall.get("genre_effect"),
                "memorised": memorised, "generator": opts.generator,
                "seconds": round(time.perf_counter() - started, 1)}
    say(f"headline: classifier test macro mAP {headline['classifier_test_macro_map']:.3f} "
        f"(prior {headline['prior_test_macro_map']:.3f}); generated posters: genre fidelity "
        f"{_shown(headline['genre_fidelity'], '.3f')} (real posters {_shown(headline['real_genre_fidelity'], '.3f')}), "
        f"FID[{tag}] {_shown(headline['fid'], '.1f')}, FD[{headline['independent']}] "
        f"{_shown(headline['fd_independent'], '.2f')}, recall {_shown(headline['recall'], '.2f')}, condition effect "
        f"{_shown(headline['condition_effect'], '.2f')}, memorised {_shown(memorised, '.1%')}; "
        f"{headline['seconds'] / 60:.1f} minutes in all")
    save_json(headline, demo.path / get("demo").run_file)
    demo.finish()
    demo.release()
    return headline


def _shown(value: float | None, spec: str) -> str:
    """A figure, or why there is none: too few real test posters of the sampled conditions to compare with."""
    return "n/a (too few real test posters)" if value is None else format(value, spec)
