"""Poster Lab: genre classification and conditional generation of movie posters."""

__version__ = "0.1.0"
