"""Every recipe users copy loads into its kind's options and passes their checks; every hostile recipe is a
one-line error that names the key, what was given and what it takes, and creates no run folder."""

from pathlib import Path

import pytest

from conftest import run_cli
from lab.kinds import get
from lab.recipes import resolve_options, shipped

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.toml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_loads_and_passes_its_checks(recipe):
    kind = get(recipe.name.split("-")[0])
    opts = resolve_options(kind.load("options"), recipe, {})
    if kind.name != "classifier":  # the classifier's checks look for ImageNet weights on this machine
        opts.validate()
    assert opts.batch_size >= 1 and opts.size.count("x") == 1


def test_the_shipped_recipes_are_the_recipes_folder():
    assert sorted(shipped()) == sorted(p.stem for p in RECIPES)


@pytest.mark.parametrize("text,message", [
    ('lr_g = "fast"', 'lr_g = "fast" is text; lr_g takes a number'),
    ("steps = 2.5", "steps = 2.5 is a number; steps takes a whole number"),
    ('conditional = "yes"', 'conditional = "yes" is text; conditional takes true or false'),
    ("diffaugment = 3", "diffaugment = 3 is a whole number; diffaugment takes text"),
    ('condition_ramp = ["a", "b"]', "condition_ramp = ['a', 'b'] is a list holding text; condition_ramp takes a list "
                                    "of whole numbers"),
    ("genre = \"Horror\"", 'genre = "Horror" is text; genre takes a list of texts'),
    ("init_from = 3", "init_from = 3 is a whole number; init_from takes text"),
    ("steps = 0", "steps must be at least 1, not 0"),
    ("lr_d = -1e-3", "lr_d must be 0 or more, not -0.001"),
    ("ema_decay = 1.5", "ema_decay must be at least 0 and below 1, not 1.5"),
    ('discriminator = "vgg"', "discriminator must be one of dcgan, projected, both, not 'vgg'"),
    ('learning_rate = 1e-3', "unknown key(s) learning_rate"),
    ("steps = [", "is not valid TOML"),
])
def test_hostile_recipes_are_one_line_errors_and_make_no_folder(capsys, synthetic, tmp_path, text, message):
    (tmp_path / "bad.toml").write_text(text + "\n")
    code, out, err = run_cli(capsys, "train-gan", "--data", str(synthetic), "--recipe", str(tmp_path / "bad.toml"),
                             "--out", str(tmp_path / "run"))
    assert code == 2 and message in err and err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_an_unreadable_or_missing_recipe_is_a_one_line_error(capsys, synthetic, tmp_path):
    (tmp_path / "locked.toml").write_bytes(b"\xff\xfe\x00 not text")
    for recipe, message in ((tmp_path / "locked.toml", "cannot read recipe"), (tmp_path / "none.toml", "cannot read "
                                                                                                      "recipe")):
        code, _, err = run_cli(capsys, "train-gan", "--data", str(synthetic), "--recipe", str(recipe), "--out",
                               str(tmp_path / "run"))
        assert code == 2 and message in err and err.count("\n") == 1, err
    code, _, err = run_cli(capsys, "train-gan", "--data", str(synthetic), "--recipe", "no-such-recipe", "--out",
                           str(tmp_path / "run"))
    assert code == 2 and "no recipe 'no-such-recipe'; the lab ships" in err
    assert not (tmp_path / "run").exists()
