"""`write_report`: which kind of run a folder is, its parts, and the page the template makes of them."""

from __future__ import annotations

import time
from pathlib import Path

import jinja2

from lab.checkpoint import read_json
from lab.classifier.inference import RUN_FILE as CLASSIFIER_FILE
from lab.diffusion.train import RUN_FILE as DIFFUSION_FILE
from lab.errors import LabError
from lab.gan.train import RUN_FILE as GAN_FILE
from lab.report.blocks import Missing, Part, Section, Table
from lab.report.classifier_run import classifier_part
from lab.report.gan_run import generator_part
from lab.runs import Run

REPORT_FILE = "report.html"
HEADLINE_FILE = "headline.json"  # what `lab demo` writes when it has finished
TEMPLATE = "template.html"


def run_kind(run_dir: Path) -> str:
    """'classifier', 'gan', 'diffusion' or 'demo', from the files a run has (or, unfinished, the options it
    started with)."""
    options = Run.open(run_dir).options
    if (run_dir / HEADLINE_FILE).is_file() or "classifier_recipe" in options:
        return "demo"
    if (run_dir / CLASSIFIER_FILE).is_file() or "schedule" in options:
        return "classifier"
    if (run_dir / GAN_FILE).is_file() or "z_dim" in options:
        return "gan"
    if (run_dir / DIFFUSION_FILE).is_file() or "prediction" in options:
        return "diffusion"
    raise LabError(f"{run_dir} is a run folder, but not a classifier, GAN, diffusion or demo run (no "
                   f"{CLASSIFIER_FILE}, {GAN_FILE}, {DIFFUSION_FILE} or {HEADLINE_FILE}); give one of those")


def write_report(run_dir: Path, out: Path | None = None, *, progress: bool = True) -> Path:
    """Write the run's page (default RUN/report.html) and return where it went."""
    run_dir = Path(run_dir)
    kind = run_kind(run_dir)
    if kind == "classifier":
        parts = [classifier_part(run_dir, progress=progress)]
    elif kind in ("gan", "diffusion"):
        parts = [generator_part(run_dir, kind, progress=progress)]
    else:
        parts = _demo_parts(run_dir, progress)
    out = Path(out) if out else run_dir / REPORT_FILE
    html = render(f"Poster Lab report: {run_dir.resolve().name}", str(run_dir.resolve()), kind, parts)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html, encoding="utf-8")
    except OSError as e:
        raise LabError(f"cannot write the report {out}: {e.strerror or e}; choose another --out") from None
    return out


def _demo_parts(demo: Path, progress: bool) -> list[Part]:
    """The demo's headline, then its classifier and its generator, each as its own run would be reported."""
    headline = Part("headline", "Demo headline", str(demo))
    section = Section("headline-figures", "Headline figures")
    if (demo / HEADLINE_FILE).is_file():
        h = read_json(demo / HEADLINE_FILE, "demo headline", f"run `lab demo` again (it wrote {demo})")
        tag = h.get("extractor", "?")
        rows = [["classifier test macro mAP", f"{h['classifier_test_macro_map']:.3f}"],
                ["genre prior test macro mAP", f"{h['prior_test_macro_map']:.3f}"],
                ["classifier validation macro mAP", f"{h['classifier_val_macro_map']:.3f}"],
                ["genre fidelity of the generated posters", f"{h['genre_fidelity']:.3f}"],
                ["genre fidelity of real test posters (ceiling)", f"{h['real_genre_fidelity']:.3f}"],
                [f"FID[{tag}]", "-" if h["fid"] is None else f"{h['fid']:.1f}"],
                [f"KID[{tag}]", "-" if h["kid"] is None else f"{h['kid']:.4f}"],
                ["whole demo, minutes", f"{h['seconds'] / 60:.1f}"]]
        section.blocks.append(Table(["figure", "value"], rows, f"From {demo / HEADLINE_FILE}."))
    else:
        section.blocks.append(Missing(f"the demo's headline ({HEADLINE_FILE}): the demo has not finished",
                                      "lab demo --out NEW_FOLDER (a demo cannot be resumed)"))
    headline.sections.append(section)
    parts = [headline]
    classifier = demo / "classifier"
    kind = "diffusion" if (demo / "diffusion").is_dir() else "gan"
    generator = demo / kind
    for folder, make in ((classifier, lambda: classifier_part(classifier, "classifier", progress)),
                         (generator, lambda: generator_part(generator, kind, (demo / "samples",), classifier,
                                                            progress))):
        if (folder / "options.json").is_file():
            parts.append(make())
        else:
            headline.sections[0].blocks.append(Missing(f"the demo's {folder.name} run ({folder})",
                                                       "lab demo --out NEW_FOLDER"))
    return parts


def render(title: str, run: str, kind: str, parts: list[Part]) -> str:
    environment = jinja2.Environment(loader=jinja2.PackageLoader("lab.report", "."), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    missing = [(part, m) for part in parts for m in part.missing()]
    return environment.get_template(TEMPLATE).render(
        title=title, run=run, kind=kind, parts=parts, missing=missing,
        written=time.strftime("%Y-%m-%d %H:%M"))
