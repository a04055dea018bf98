"""Run kinds: what kind of run a folder holds, and where the lab finds what it does with each kind.

Every run records its kind in options.json when it is created. The registry maps a kind to its
options class, trainer, sampler (generators only), report part, run file and checkpoint names. Its
entries name their code as "module:attribute" and load it on use, so this module sits at the
bottom of the package, importing none of the parts it names, and a new generator is one package
plus one `register` call.

Runs made before kinds were recorded are told apart here, and only here, by the files and option
keys they have (`kind_of`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError
from lab.runs import Run

KIND_KEY = "kind"  # in options.json


@dataclass(frozen=True)
class RunKind:
    name: str  # what options.json records, and the `lab train-NAME` verb
    title: str  # for people: "conditional poster GAN"
    run_file: str  # what training writes at the top of the run folder when it ends
    options: str  # "module:Class", the run's options dataclass
    trainer: str  # "module:function", (options, run, resume=, progress=) -> the run file's contents
    sampler: str | None = None  # "module:function", (run_dir, **settings) -> lab.generation.sampling.Renderer
    # "module:function", (run_dir, small (W, H)) -> (uint8 posters -> larger ones, what samples.json records)
    enlarger: str | None = None
    report: str | None = None  # "module:function", the run's part of a `lab report` page
    weights: tuple[str, ...] = ()  # checkpoints/<name>.safetensors a finished run has
    legacy_keys: tuple[str, ...] = ()  # option keys that only this kind had, for runs with no kind recorded
    headline: str | None = None  # a metrics.jsonl key that `lab runs` shows, the last value logged
    slug: str | None = None  # "module:function", (options) -> the run folder's name before its filter's

    def load(self, part: str):
        """The code an entry names ("options", "trainer", "sampler", "enlarger", "report" or "slug")."""
        module, attribute = getattr(self, part).split(":")
        return getattr(importlib.import_module(module), attribute)

    def folder_name(self, options) -> str:
        return self.load("slug")(options) if self.slug else self.name


KINDS: dict[str, RunKind] = {}


def register(kind: RunKind) -> RunKind:
    """Add a kind (or replace one of the same name); returns it."""
    KINDS[kind.name] = kind
    return kind


def get(name: str) -> RunKind:
    if name not in KINDS:
        raise LabError(f"unknown run kind {name!r}; the lab knows {', '.join(KINDS)}")
    return KINDS[name]


def kind_of(run_dir: Path) -> RunKind:
    """The kind of run in `run_dir`; a folder that is no run, or a run of no kind the lab knows, is a
    one-line error."""
    options = Run.open(run_dir).options
    name = options.get(KIND_KEY)
    if name is None:
        name = _legacy_kind(Path(run_dir), options)
    if name not in KINDS:
        raise LabError(f"{run_dir} is a run of kind {name!r}, which this lab does not know; it knows "
                       f"{', '.join(KINDS)}")
    return KINDS[name]


def _legacy_kind(run_dir: Path, options: dict) -> str:
    """A run made before kinds were recorded: by its run file, or (unfinished) by its options' keys."""
    for kind in KINDS.values():
        if (run_dir / kind.run_file).is_file():
            return kind.name
    for kind in KINDS.values():
        if any(key in options for key in kind.legacy_keys):
            return kind.name
    raise LabError(f"{run_dir} is a run folder of no kind the lab knows (no {KIND_KEY} in its options.json, and "
                   f"none of {', '.join(k.run_file for k in KINDS.values())})")


def options_of(run: Run):
    """A run's options as its kind's options object (the recorded kind itself left out)."""
    kind = kind_of(run.path)
    saved = {k: v for k, v in run.options.items() if k != KIND_KEY}
    return kind.load("options")(**saved)


register(RunKind(
    name="classifier", title="poster genre classifier", run_file="classifier.json",
    options="lab.classifier.options:ClassifierOptions", trainer="lab.classifier.train:train_classifier",
    report="lab.report.classifier_run:classifier_page", weights=("best", "last"),
    legacy_keys=("schedule",), headline="val_macro_map", slug="lab.classifier.options:folder_name"))
register(RunKind(
    name="ensemble", title="classifier ensemble", run_file="ensemble.json",
    options="lab.classifier.options:EnsembleOptions", trainer="lab.classifier.ensemble_run:fit_ensemble",
    report="lab.report.classifier_run:classifier_page", headline="val_macro_map",
    slug="lab.classifier.options:ensemble_folder_name"))
register(RunKind(
    name="gan", title="conditional poster GAN", run_file="gan.json",
    options="lab.gan.options:GanOptions", trainer="lab.gan.train:train_gan", sampler="lab.gan.sample:load_renderer",
    report="lab.report.generator_run:generator_page", weights=("g", "g_ema"),
    legacy_keys=("z_dim",), headline="d_loss", slug="lab.gan.options:folder_name"))
register(RunKind(
    name="diffusion", title="conditional poster diffusion model", run_file="diffusion.json",
    options="lab.diffusion.options:DiffusionOptions", trainer="lab.diffusion.train:train_diffusion",
    sampler="lab.diffusion.sample:load_renderer", report="lab.report.generator_run:generator_page",
    weights=("denoiser", "denoiser_ema"), legacy_keys=("prediction",), headline="loss"))
register(RunKind(
    name="upsampler", title="poster upsampler", run_file="upsampler.json",
    options="lab.upsampler.options:UpsamplerOptions", trainer="lab.upsampler.train:train_upsampler",
    enlarger="lab.upsampler.sample:load_enlarger", report="lab.report.generator_run:generator_page", weights=("upsampler", "upsampler_ema"), headline="loss"))
register(RunKind(
    name="demo", title="demo", run_file="headline.json", options="lab.demo:DemoOptions", trainer="lab.demo:run_demo",
    report="lab.report.page:demo_parts", legacy_keys=("classifier_recipe",)))
