"""How much the asked-for condition changes a generator's posters, against how much the noise does.

    python bench/condition_effect.py runs/RUN/samples/DIR [DIR ...]

Reads folders written by `lab sample` from a conditional run, where every condition gets the same
noises, and prints the condition effect and its two parts (lab/scoring/condition_effect.py): the
genre effect (conditions of one decade) and the decade effect (conditions of the same genres), and
each again on the posters blurred and shrunk to a quarter of their sides.
`lab score-samples` writes the same figures into scores.json.
"""

import argparse
from pathlib import Path

from lab.errors import LabError
from lab.generation.samples import read_samples
from lab.scoring.condition_effect import BLURRED, EFFECTS, condition_effects


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", type=Path, nargs="+", help="folders written by `lab sample`")
    args = parser.parse_args()
    try:
        effects = [condition_effects(*read_samples(samples_dir)) for samples_dir in args.samples]
    except LabError as e:
        raise SystemExit(f"error: {e}") from None
    print("".join(f"{name.replace('_', ' '):>26}" for name in EFFECTS + BLURRED) + "  samples")
    for samples_dir, figures in zip(args.samples, effects):
        print("".join(f"{'-' if figures[k] is None else format(figures[k], '.2f'):>26}" for k in EFFECTS + BLURRED)
              + f"  {samples_dir}")


if __name__ == "__main__":
    main()
