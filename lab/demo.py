"""`run_demo`: the whole lab end to end on one dataset, with the quick recipes.

split -> train-classifier -> evaluate -> train-gan (or train-diffusion) -> sample -> score-samples,
each step the same library call its command makes, each output in its own folder under one demo folder.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from lab.checkpoint import save_json
from lab.classifier.evaluate import evaluate_run
from lab.classifier.train import ClassifierOptions, train_classifier
from lab.data.metadata import read_dataset
from lab.errors import LabError
from lab.diffusion.train import DiffusionOptions, train_diffusion
from lab.gan.train import GanOptions, train_gan
from lab.generation.generators import sample_run
from lab.recipes import resolve_options
from lab.runs import Run
from lab.scoring.score import score_samples

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
# generator -> (its options, its trainer, what it is called)
GENERATORS = {"gan": (GanOptions, train_gan, "conditional GAN"),
              "diffusion": (DiffusionOptions, train_diffusion, "conditional diffusion model")}


def run_demo(data: Path, out: Path | None = None, *, samples_per_condition: int = 32, seed: int = 0,
             classifier_recipe: Path = RECIPES / "classifier-quick.toml",
             gan_recipe: Path = RECIPES / "gan-quick.toml", generator: str = "gan",
             diffusion_recipe: Path = RECIPES / "diffusion-quick.toml", say=print) -> dict:
    """Run every step into `out`; `say` reports each step as it finishes. Returns the headline figures.

    `generator`: which generator the demo trains, "gan" (with `gan_recipe`) or "diffusion" (with
    `diffusion_recipe`); its run is the demo's `gan/` or `diffusion/` folder.
    """
    if generator not in GENERATORS:
        raise LabError(f"--generator must be one of {', '.join(GENERATORS)}, not {generator!r}")
    generator_recipe = gan_recipe if generator == "gan" else diffusion_recipe
    for recipe in (classifier_recipe, generator_recipe):
        if not Path(recipe).is_file():
            raise LabError(f"recipe {recipe} is missing; run the demo from a checkout of the lab, or give "
                           f"--classifier-recipe and --{generator}-recipe")
    read_dataset(data)  # a missing dataset fails before anything is made
    demo = Run.create(out, "demo", {"data": str(data), "seed": seed, "samples_per_condition": samples_per_condition,
                                    "classifier_recipe": str(classifier_recipe), "generator": generator,
                                    f"{generator}_recipe": str(generator_recipe)})
    out = demo.path
    say(f"demo folder: {out}")
    started = time.perf_counter()

    def step(message: str) -> None:
        say(f"[{time.perf_counter() - started:6.0f} s] {message}")

    flags = {"data": str(data), "seed": seed}
    clf_opts = resolve_options(ClassifierOptions, classifier_recipe, flags)
    clf_run = Run.create(out / "classifier", "", asdict(clf_opts))
    step(f"training the genre classifier ({Path(classifier_recipe).name}) in {clf_run.path}")
    clf_info = train_classifier(clf_opts, clf_run)
    report, eval_path = evaluate_run(clf_run.path)
    step(f"classifier test macro mAP {report['macro_map']:.3f} (genre prior {report['baselines']['prior']['macro_map']:.3f}); "
         f"evaluation in {eval_path}")

    options, train, name = GENERATORS[generator]
    gen_opts = resolve_options(options, generator_recipe, flags)
    gen_run = Run.create(out / generator, "", asdict(gen_opts))
    step(f"training the {name} ({Path(generator_recipe).name}) in {gen_run.path}")
    gen_info = train(gen_opts, gen_run)
    step(f"{name} trained {gen_info['steps']} steps; grids in {gen_run.path / 'grids'}")

    genres = sorted({g for c in gen_info["grid"] for g in c["genres"]}, key=gen_info["genres"].index)
    decades = sorted({c["decade"] for c in gen_info["grid"]})
    samples_dir, summary = sample_run(gen_run.path, genres, [str(d) for d in decades], samples_per_condition, seed,
                                      out / "samples")
    step(f"{len(summary['images'])} posters for {len(summary['conditions'])} genre-decade conditions in {samples_dir}")

    scores, scores_path = score_samples(samples_dir, clf_run.path)
    overall, tag = scores["overall"], scores["extractor"]
    step(f"scores in {scores_path}")
    headline = {"classifier_test_macro_map": report["macro_map"],
                "prior_test_macro_map": report["baselines"]["prior"]["macro_map"],
                "classifier_val_macro_map": clf_info["models"]["classifier"]["val_macro_map"],
                "genre_fidelity": overall["genre_fidelity"], "real_genre_fidelity": overall["real"]["genre_fidelity"],
                "extractor": tag, "fid": overall["fid"], "kid": overall["kid"], "generator": generator,
                "seconds": round(time.perf_counter() - started, 1)}
    say(f"headline: classifier test macro mAP {headline['classifier_test_macro_map']:.3f} "
        f"(prior {headline['prior_test_macro_map']:.3f}); generated posters' genre fidelity "
        f"{_shown(headline['genre_fidelity'], '.3f')} (real posters {_shown(headline['real_genre_fidelity'], '.3f')}); "
        f"FID[{tag}] {_shown(headline['fid'], '.1f')}, KID[{tag}] {_shown(headline['kid'], '.4f')}; "
        f"{headline['seconds'] / 60:.1f} minutes in all")
    save_json(headline, out / "headline.json")
    return headline


def _shown(value: float | None, spec: str) -> str:
    """A figure, or why there is none: too few real test posters of the sampled conditions to compare with."""
    return "n/a (too few real test posters)" if value is None else format(value, spec)
