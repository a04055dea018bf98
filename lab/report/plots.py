"""The report's charts, drawn by matplotlib's Agg backend (no display) and returned as data: URIs."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lab.report.embed import bytes_uri

DPI = 100
BLUE, ORANGE, GREY = "#3b6ea8", "#e08a2c", "#9a9a9a"


def figure_uri(fig: Figure) -> str:
    FigureCanvasAgg(fig)  # Agg whatever backend matplotlib was configured with: the report needs no display
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return bytes_uri(buffer.getvalue(), "image/png")


def ap_bars(genres: list[str], ap: list[float | None], frequency: list[float],
            baseline: tuple[str, list[float | None]] | None = None) -> str:
    """Per-genre AP of the classifier (and optionally a baseline), beside the genre's frequency: the
    AP that guessing reaches."""
    order = np.argsort(frequency)[::-1]
    y = np.arange(len(genres))
    fig = Figure(figsize=(7.5, 0.28 * len(genres) + 1.2))
    ax = fig.add_subplot()
    bars = [("classifier", ap, BLUE)] + ([(baseline[0], baseline[1], ORANGE)] if baseline else [])
    height = 0.8 / (len(bars) + 1)
    for k, (label, values, colour) in enumerate(bars):
        ax.barh(y + k * height, [np.nan if values[j] is None else values[j] for j in order], height, label=label,
                color=colour)
    ax.barh(y + len(bars) * height, [frequency[j] for j in order], height, label="frequency (chance AP)",
            color=GREY)
    ax.set_yticks(y + height * len(bars) / 2, [genres[j] for j in order])
    return _share_bars(fig, ax, "average precision on the test posters")


def confusion(matrix: np.ndarray, labels: list[str], xlabel: str, ylabel: str) -> str:
    """Counts in each cell, coloured by the share of their row."""
    share = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    n = len(labels)
    fig = Figure(figsize=(0.62 * n + 2, 0.55 * n + 1.6))
    ax = fig.add_subplot()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.55 else "black")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return figure_uri(fig)


def precision_recall(genres: list[str], precision: list[float], recall: list[float], thresholds: list[float]) -> str:
    y = np.arange(len(genres))
    fig = Figure(figsize=(7.5, 0.28 * len(genres) + 1.2))
    ax = fig.add_subplot()
    ax.barh(y - 0.2, precision, 0.4, label="precision", color=BLUE)
    ax.barh(y + 0.2, recall, 0.4, label="recall", color=ORANGE)
    ax.set_yticks(y, [f"{g} (> {t:.2f})" for g, t in zip(genres, thresholds)])
    return _share_bars(fig, ax, "on the test posters, at each genre's threshold tuned for F1 on validation")


def _share_bars(fig, ax, xlabel: str) -> str:
    """Horizontal bars of shares (0-1), first genre on top: the finish both genre bar charts share."""
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(xlabel)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return figure_uri(fig)


def curves(panels: dict[str, dict[str, tuple[list[float], list[float]]]], xlabel: str) -> str:
    """Line charts side by side: panel title -> line label -> (x, y)."""
    fig = Figure(figsize=(4 * len(panels), 3))
    for k, (title, lines) in enumerate(panels.items()):
        ax = fig.add_subplot(1, len(panels), k + 1)
        for label, (x, y) in lines.items():
            ax.plot(x, y, marker="o" if len(x) < 30 else None, markersize=3, label=label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_uri(fig)
