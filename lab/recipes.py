"""Recipes: TOML files of options that users copy (`lab recipes NAME`); flags given on the command line win.

Every key of a recipe is checked against its options class before anything runs: an unknown key,
or a value of the wrong type, is a one-line error that names the key, what was given and what it
takes. Values out of range are the options' own `validate` to refuse.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from importlib import resources
from pathlib import Path

from lab.errors import LabError

PACKAGE = "lab.recipebook"  # the recipes/ folder, shipped inside the package (pyproject.toml)


def resolve_options(cls, recipe: Path | None, flags: dict):
    """`cls` defaults, overridden by the recipe's keys, overridden by the flags that were given (not None).
    Flags are checked like recipe keys: a flag of another kind's options, or of the wrong type, is an error."""
    values = read_recipe(recipe, cls) if recipe is not None else {}
    given = {k: v for k, v in flags.items() if v is not None}
    values.update(_checked(given, cls, "option"))
    return cls(**values)


def parse_settings(settings: list[str]) -> dict:
    """`--set KEY=VALUE` options, each VALUE read as TOML (so 500 is a number and '"32x48"' text)."""
    values = {}
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep or not key.strip():
            raise LabError(f"--set {setting!r} is not KEY=VALUE")
        try:
            values[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            values[key.strip()] = value  # plain text needs no quotes
    return values


def read_recipe(recipe: Path, cls) -> dict:
    """A recipe's keys, each checked against `cls`'s fields."""
    path = Path(recipe)
    if not path.exists() and "/" not in str(recipe) and not str(recipe).endswith(".toml"):
        path = shipped_path(str(recipe))  # a shipped recipe by name: "gan-quick"
    try:
        values = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise LabError(f"cannot read recipe {recipe}: {getattr(e, 'strerror', None) or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise LabError(f"recipe {recipe} is not valid TOML: {e}") from None
    return _checked(values, cls, f"recipe {recipe}:")


def _checked(values: dict, cls, where: str) -> dict:
    """`values` with each key known to `cls` and each value of its field's type (an int where a float is taken
    becomes a float); anything else is a one-line LabError saying `where`."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise LabError(f"{where} unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    checked = {}
    for key, value in values.items():
        if not _fits(value, hints[key]):
            raise LabError(f"{where} {key} = {_shown(value)} is {_kind(value)}; {key} takes {describe(hints[key])}")
        checked[key] = float(value) if hints[key] is float and isinstance(value, int) else value
    return checked


def describe(hint) -> str:
    """A type as people read it: 'a number', 'a list of whole numbers', 'text'."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if _is_union(hint):
        return " or ".join(describe(a) for a in args)
    origin = typing.get_origin(hint)
    if hint is list or origin is list:
        return f"a list of {_PLURAL[args[0]]}" if args and args[0] in _PLURAL else "a list"
    return _NAMES.get(hint, getattr(hint, "__name__", str(hint)))


_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}
_PLURAL = {int: "whole numbers", float: "numbers", str: "texts"}


def _is_union(hint) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _fits(value, hint) -> bool:
    if _is_union(hint):
        return any(_fits(value, a) for a in typing.get_args(hint) if a is not type(None))
    origin = typing.get_origin(hint)
    if hint is list or origin is list:
        args = typing.get_args(hint)
        return isinstance(value, list) and (not args or all(_fits(v, args[0]) for v in value))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint)


def _kind(value) -> str:
    if isinstance(value, list):
        return "a list" + (f" holding {_kind(value[0])}" if value else "")
    return {bool: "true or false", int: "a whole number", float: "a number", str: "text",
            dict: "a table"}.get(type(value), type(value).__name__)


def _shown(value) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 60 else text[:57] + "..."


def _folder():
    """The shipped recipes: recipes/ beside the package in a checkout, else the installed lab.recipebook."""
    checkout = Path(__file__).resolve().parents[1] / "recipes"
    return checkout if checkout.is_dir() else resources.files(PACKAGE)


def shipped() -> dict[str, str]:
    """The recipes that come with the lab: {name: TOML text}."""
    return {entry.name.removesuffix(".toml"): entry.read_text()
            for entry in sorted(_folder().iterdir(), key=lambda e: e.name) if entry.name.endswith(".toml")}


def shipped_path(name: str) -> Path:
    """A shipped recipe as a file path (`lab demo` reads its recipes this way, from a wheel too)."""
    entry = _folder() / f"{name}.toml"
    if not entry.is_file():
        raise LabError(f"no recipe {name!r}; the lab ships {', '.join(shipped())}")
    return Path(str(entry))
