"""What a report page is made of: parts (one per run) of sections of blocks the template lays out."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Figure:
    """A picture (a data: URI) with its caption."""
    src: str
    alt: str
    caption: str = ""
    kind: str = "figure"


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    kind: str = "table"


@dataclass
class Tile:
    """One poster in a gallery, with what the model or the scorer said about it."""
    src: str
    alt: str
    caption: str


@dataclass
class Gallery:
    title: str
    tiles: list[Tile]
    kind: str = "gallery"


@dataclass
class Row:
    """Galleries side by side: a genre's surest posters beside its worst, samples beside real posters."""
    galleries: list[Gallery]
    title: str = ""
    kind: str = "row"


@dataclass
class Missing:
    """A piece the run does not have yet, and the command that makes it (None: nothing the lab runs)."""
    what: str
    command: str | None
    kind: str = "missing"


@dataclass
class Section:
    id: str
    title: str
    blocks: list = field(default_factory=list)
    intro: str = ""


@dataclass
class Part:
    """Everything about one run; a demo page has several, linked from its top."""
    id: str
    title: str
    run: str
    sections: list[Section] = field(default_factory=list)

    def missing(self) -> list[Missing]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Missing)]
