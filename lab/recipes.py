"""Recipes: TOML files of options that users copy; flags given on the command line win."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from lab.errors import LabError


def resolve_options(cls, recipe: Path | None, flags: dict):
    """`cls` defaults, overridden by the recipe's keys, overridden by the flags that were given (not None)."""
    values = {}
    if recipe is not None:
        try:
            values = tomllib.loads(Path(recipe).read_text())
        except OSError as e:
            raise LabError(f"cannot read recipe {recipe}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise LabError(f"recipe {recipe} is not valid TOML: {e}") from None
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise LabError(f"recipe {recipe} has unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values.update({k: v for k, v in flags.items() if v is not None})
    return cls(**values)
