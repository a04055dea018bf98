"""`write_report`: which kind of run a folder is, its parts, and the page the template makes of them."""

from __future__ import annotations

import time
from pathlib import Path

import jinja2

from lab.checkpoint import read_json
from lab.errors import LabError
from lab.kinds import get, kind_of
from lab.report.blocks import Missing, Part, Section, Table
from lab.report.classifier_run import classifier_part
from lab.report.generator_run import generator_part

REPORT_FILE = "report.html"
TEMPLATE = "template.html"


def write_report(run_dir: Path, out: Path | None = None, *, progress: bool = True) -> Path:
    """Write the run's page (default RUN/report.html) and return where it went; the run's kind says
    which parts make it (lab.kinds)."""
    run_dir = Path(run_dir)
    kind = kind_of(run_dir)
    if kind.report is None:
        raise LabError(f"{run_dir} is a {kind.title} run, which has no report page")
    parts = kind.load("report")(run_dir, progress=progress)
    out = Path(out) if out else run_dir / REPORT_FILE
    html = render(f"Poster Lab report: {run_dir.resolve().name}", str(run_dir.resolve()), kind.name, parts)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html, encoding="utf-8")
    except OSError as e:
        raise LabError(f"cannot write the report {out}: {e.strerror or e}; choose another --out") from None
    return out


def demo_parts(demo: Path, progress: bool = True) -> list[Part]:
    """The demo's headline, then its classifier and its generator, each as its own run would be reported."""
    headline = Part("headline", "Demo headline", str(demo))
    section = Section("headline-figures", "Headline figures")
    headline_file = demo / get("demo").run_file
    if headline_file.is_file():
        h = read_json(headline_file, "demo headline", f"run `lab demo --out {demo} --resume` again")
        tag, free = h.get("extractor", "?"), h.get("independent")

        def num(key, fmt):
            return "-" if h.get(key) is None else format(h[key], fmt)

        rows = [["classifier test macro mAP", num("classifier_test_macro_map", ".3f")],
                ["genre prior test macro mAP", num("prior_test_macro_map", ".3f")],
                ["classifier validation macro mAP", num("classifier_val_macro_map", ".3f")],
                ["genre fidelity of the generated posters", num("genre_fidelity", ".3f")],
                ["genre fidelity of real test posters (ceiling)", num("real_genre_fidelity", ".3f")],
                [f"FID[{tag}]", num("fid", ".1f")], [f"KID[{tag}]", num("kid", ".4f")],
                [f"FD[{free}] (no ImageNet in it)", num("fd_independent", ".2f")],
                ["precision / recall", f"{num('precision', '.2f')} / {num('recall', '.2f')}"],
                ["condition effect / genre effect", f"{num('condition_effect', '.2f')} / {num('genre_effect', '.2f')}"],
                ["memorised share of the samples", num("memorised", ".1%")],
                ["whole demo, minutes", f"{h['seconds'] / 60:.1f}"]]
        section.blocks.append(Table(["figure", "value"], rows, f"From {headline_file}."))
    else:
        section.blocks.append(Missing(f"the demo's headline ({headline_file.name}): the demo has not finished",
                                      f"lab demo --out {demo} --resume"))
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
                                                       f"lab demo --out {demo} --resume"))
    return parts


def render(title: str, run: str, kind: str, parts: list[Part]) -> str:
    environment = jinja2.Environment(loader=jinja2.PackageLoader("lab.report", "."), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    missing = [(part, m) for part in parts for m in part.missing()]
    return environment.get_template(TEMPLATE).render(
        title=title, run=run, kind=kind, parts=parts, missing=missing,
        written=time.strftime("%Y-%m-%d %H:%M"))
