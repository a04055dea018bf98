"""The dataset layer every part of the lab reads through."""

from lab.data.filters import PosterFilter
from lab.data.metadata import PosterTable, read_dataset
from lab.data.poster_dataset import PosterDataset, Posters, open_posters

__all__ = ["PosterDataset", "PosterFilter", "PosterTable", "Posters", "open_posters", "read_dataset"]
