"""Scoring generated posters: genre fidelity from a classifier, FID/KID through torch-fidelity."""
