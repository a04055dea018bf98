"""Every recipe users copy loads into its trainer's options."""

from pathlib import Path

import pytest

from lab.classifier.train import ClassifierOptions
from lab.diffusion.train import DiffusionOptions
from lab.gan.train import GanOptions
from lab.recipes import resolve_options

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.toml"))
KINDS = {"classifier": ClassifierOptions, "gan": GanOptions, "diffusion": DiffusionOptions}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_loads(recipe):
    kind = recipe.name.split("-")[0]
    if kind not in KINDS:
        pytest.skip(f"{recipe.name} is for a trainer this test does not know yet")
    opts = resolve_options(KINDS[kind], recipe, {})
    if kind in ("gan", "diffusion"):
        opts.validate()
    assert opts.batch_size >= 1 and opts.size.count("x") == 1
