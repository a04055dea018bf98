"""The documents tell the truth: every `lab` command in README.md and docs/ parses as written, the README's
synthetic quick start runs as written, and every recipe key and shipped recipe is documented."""

import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer

from lab.cli import app
from lab.kinds import KINDS
from lab.recipes import shipped

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _blocks(path: Path) -> list[tuple[str, str]]:
    """(the heading above it, its text) for every fenced bash block."""
    out, heading = [], ""
    for part in re.split(r"(^```bash\n.*?^```)", path.read_text(), flags=re.S | re.M):
        if part.startswith("```bash"):
            out.append((heading, part[len("```bash\n"):-3]))
        else:
            headings = re.findall(r"^#+ (.*)$", part, flags=re.M)
            heading = headings[-1] if headings else heading
    return out


def _commands(text: str) -> list[list[str]]:
    """Each `lab ...` command of a block, as its arguments (environment settings and comments left out)."""
    commands = []
    for line in text.replace("\\\n", " ").splitlines():
        for piece in re.split(r"&&|;", line):
            words = shlex.split(piece, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                words = words[1:]
            if words[:1] == ["lab"]:
                commands.append(words[1:])
    return commands


def test_every_lab_command_in_the_documents_parses_as_written():
    command = typer.main.get_command(app)
    seen = 0
    for path in DOCUMENTS:
        for _, text in _blocks(path):
            for args in _commands(text):
                if any("$" in a for a in args):
                    continue
                seen += 1
                try:
                    ctx = command.make_context("lab", list(args), resilient_parsing=False)
                    while isinstance(ctx.command, click.Group) and ctx.protected_args:
                        name, *rest = ctx.protected_args + ctx.args
                        sub = ctx.command.get_command(ctx, name)
                        assert sub is not None, (path.name, args)
                        ctx = sub.make_context(name, rest, parent=ctx)
                except click.ClickException as e:
                    pytest.fail(f"{path.name}: `lab {' '.join(args)}` does not parse: {e.format_message()}")
    assert seen > 20


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def test_every_recipe_key_and_shipped_recipe_is_documented():
    text = (ROOT / "docs" / "recipes.md").read_text()
    documented = set(re.findall(r"`([a-z_0-9]+)`", text))
    for kind in KINDS.values():
        cls = kind.load("options")
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in documented]
        assert not missing, (kind.name, missing)
    assert not [name for name in shipped() if f"`{name}`" not in text]


@pytest.mark.slow
def test_the_readme_quick_start_on_synthetic_posters_runs_as_written_and_resumes(tmp_path):
    (_, text), = [b for b in _blocks(ROOT / "README.md") if b[0].startswith("Quick start on synthetic")]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    def lab(*args):
        result = subprocess.run([sys.executable, "-m", "lab.cli", *args], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=900)
        assert result.returncode == 0, (args, result.stderr[-2000:])
        return result.stdout

    outputs = [lab(*args) for args in _commands(text)]
    demo = tmp_path / "runs" / "demo-synthetic"
    said = next(out for args, out in zip(_commands(text), outputs) if args[0] == "demo")
    for folder in ("classifier", "gan", "samples"):  # it says where everything went
        assert f"demo-synthetic{os.sep}{folder}" in said
    headline = json.loads((demo / "headline.json").read_text())
    assert headline["classifier_test_macro_map"] > headline["prior_test_macro_map"]
    assert headline["extractor"] in ("mobilenet_v2", "inception-v3-compat") and headline["fid"] > 0
    scores = json.loads((demo / "samples" / "scores.json").read_text())
    assert scores["overall"]["n"] == 4 * len(scores["conditions"]) and "headline:" in said
    assert (demo / "report.html").is_file()

    # An interrupted demo goes on where it stopped: the classifier is kept, the GAN and what follows are redone.
    classifier_metrics = (demo / "classifier" / "metrics.jsonl").read_bytes()
    for gone in ("headline.json", "finished.json", "gan/finished.json", "gan/gan.json"):
        (demo / gone).unlink()
    shutil.rmtree(demo / "samples")
    out = lab("demo", "--resume", "--out", str(demo))
    assert (demo / "classifier" / "metrics.jsonl").read_bytes() == classifier_metrics
    assert "training the poster genre classifier" not in out and "training the conditional poster GAN" in out
    assert (demo / "headline.json").is_file()
