"""How much of real posters' genre a generator's samples carry, with the genre prior taken out.

Top-3 genre fidelity flatters a folder whose genres are the prior's own favourites: a classifier that
ignores the poster puts Drama, Comedy and Romance in its top 3 of almost everything. Here the judge
instead picks, for each poster, one genre among the k genres asked in the folder, after centring each
genre's probability on its mean over the real posters of those conditions, so that a genre common
everywhere wins nothing. The share picked right is set against chance (1/k) and against the same
pick on real posters of the same conditions; the genre signal is (samples - chance) / (real - chance):
0 when the samples carry no genre, 1 when they carry as much as real posters.
"""

from __future__ import annotations

import numpy as np


def genre_choice(sample_p: np.ndarray, sample_genre: list[str], real_p: np.ndarray, real_genre: list[str],
                 vocabulary: list[str]) -> dict | None:
    """The prior-free genre figure of single-genre conditions.

    `sample_p`, `real_p`: (N, G) genre probabilities by the judge, columns in `vocabulary`'s order;
    `sample_genre`, `real_genre`: the genre each poster was asked for (a real poster: that of the condition
    it stands for; one with two asked genres stands for both). None with fewer than two genres, or no
    real posters of one of them.
    """
    asked = sorted(set(sample_genre), key=vocabulary.index)
    if len(asked) < 2 or set(real_genre) != set(asked):
        return None
    columns = [vocabulary.index(g) for g in asked]
    centre = real_p[:, columns].mean(0)

    def right(p, genres):
        picked = np.argmax(p[:, columns] - centre, axis=1)
        return float(np.mean([asked[j] == g for j, g in zip(picked, genres)]))

    chance = 1 / len(asked)
    samples, real = right(sample_p, sample_genre), right(real_p, real_genre)
    return {"genres": asked, "chance": chance, "samples": samples, "real": real,
            "signal": (samples - chance) / (real - chance) if real > chance else None}
