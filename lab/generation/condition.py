"""What a generated poster is asked to be: a set of genres and a decade."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from lab.data.filters import canonical_genres, parse_decade
from lab.errors import LabError


@dataclass(frozen=True)
class Condition:
    genres: tuple[str, ...]
    decade: int

    def slug(self) -> str:
        return "-".join(g.lower() for g in self.genres).replace("/", "") + f"-{self.decade}s"

    def label(self) -> str:
        return f"{'+'.join(self.genres)}, {self.decade}s"

    def to_dict(self) -> dict:
        return {"genres": list(self.genres), "decade": self.decade}

    @classmethod
    def from_dict(cls, entry: dict) -> Condition:
        """The inverse of `to_dict`: a condition as samples.json and run files store it."""
        return cls(tuple(entry["genres"]), entry["decade"])


def parse_conditions(genres: list[str], decades: list[str], known_genres: list[str],
                     known_decades: list[int]) -> list[Condition]:
    """Every --genre with every --decade; 'Horror+Comedy' asks for both genres at once.

    A genre or decade outside `known_*` (what the run trained on) is an error naming what is known.
    """
    if not genres or not decades:
        raise LabError(f"give at least one --genre and one --decade; this run knows genres "
                       f"{', '.join(known_genres)} and decades {', '.join(f'{d}s' for d in known_decades)}")
    genre_sets = [canonical_genres(g.split("+"), known_genres) for g in genres]
    decade_list = []
    for d in decades:
        d = parse_decade(d)
        if d not in known_decades:
            raise LabError(f"this run never trained on the {d}s; it knows "
                           f"{', '.join(f'{k}s' for k in known_decades)}")
        decade_list.append(d)
    return [Condition(g, d) for g, d in itertools.product(genre_sets, dict.fromkeys(decade_list))]


def condition_tensors(conditions: list[Condition], genres: list[str], decades: list[int],
                      device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(multi-hot genres (N, G), decade indices (N,)) in the run's vocabularies."""
    y = torch.zeros(len(conditions), len(genres))
    for i, c in enumerate(conditions):
        y[i, [genres.index(g) for g in c.genres]] = 1
    d = torch.tensor([decades.index(c.decade) for c in conditions], dtype=torch.long)
    return y.to(device), d.to(device)
