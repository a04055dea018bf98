"""Poster Lab: genre classification and conditional generation of movie posters.

The Python API (lab.api) is re-exported here, imported on first use so that `import lab` stays light.
"""

__version__ = "0.2.0"


def __getattr__(name: str):
    import importlib
    api = importlib.import_module("lab.api")
    if name in api.__all__:
        return getattr(api, name)
    raise AttributeError(f"module 'lab' has no attribute {name!r}")


def __dir__():
    import importlib
    api = importlib.import_module("lab.api")
    return sorted([*globals(), *api.__all__])
