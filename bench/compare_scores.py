"""Generators side by side: one Markdown row per scored samples folder (`lab score-samples` wrote its scores.json).

    python bench/compare_scores.py NAME=SAMPLES_DIR [NAME=SAMPLES_DIR ...] [--cas NAME=CAS_SAMPLES_DIR ...]

A NAME may point at a scores file instead of a folder (`lab score-samples DIR --judge OTHER --out FILE`): the
same samples read by another judge.

Every figure of the overall row: FID/KID/precision/recall in the chosen feature space (the standard
Inception where it is installed), FD/precision/recall in the scratch CNN's (no ImageNet in it), genre
fidelity and decade accuracy beside the real posters' ceiling, the genre signal with the prior taken out, a
steered folder's steerer's own fidelity and how far it is above the judge's, the condition
effects (the genre's and decade's also on posters shrunk to a quarter of their sides), the memorised share beside real test posters', and, from a folder scored with --cas, the CAS ratios.
"""

import argparse
import json
from pathlib import Path


def _pairs(values: list[str]) -> dict[str, Path]:
    out = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep:
            raise SystemExit(f"error: {value!r} is not NAME=SAMPLES_DIR")
        out[name] = Path(folder)
    return out


def _scores(folder: Path) -> dict:
    """A folder's scores.json, or a scores file itself (`lab score-samples --out`, another judge's reading)."""
    path = folder if folder.suffix == ".json" else folder / "scores.json"
    if not path.is_file():
        raise SystemExit(f"error: {path} is missing; score the folder with `lab score-samples {folder} --classifier RUN`")
    return json.loads(path.read_text())


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", help="NAME=SAMPLES_DIR")
    p.add_argument("--cas", nargs="*", default=[], help="NAME=SAMPLES_DIR scored with --cas")
    args = p.parse_args()
    folders, cas = _pairs(args.folders), _pairs(args.cas)
    first = _scores(next(iter(folders.values())))
    tag, free = first["extractor"], first.get("independent") or "-"
    print(f"| generator | FID[{tag}] | KID | precision | recall | FD[{free}] | precision | recall | genre fidelity "
          f"(real) | decade accuracy (real) | genre signal (picked right, real) | the steerer's fidelity (minus the "
          f"judge's) | condition effect | genre effect (blurred) | decade effect (blurred) "
          f"| memorised (real test) | CAS mAP ratio (above chance) | CAS decade ratio |")
    print("| --- " * 18 + "|")
    for name, folder in folders.items():
        s = _scores(folder)
        o, i = s["overall"], s["overall"].get("independent") or {}
        memo = s.get("memorisation") or {}
        c = _scores(cas[name])["cas"] if name in cas else None
        pick = o.get("genre_choice") or {}
        steering = s.get("steering") or {}
        by_steerer = steering.get("steerer") or {}
        print(f"| {name} | {_num(o['fid'], '.1f')} | {_num(o['kid'], '.3f')} | {_num(o['precision'], '.2f')} | "
              f"{_num(o['recall'], '.2f')} | {_num(i.get('fid'), '.2f')} | {_num(i.get('precision'), '.2f')} | "
              f"{_num(i.get('recall'), '.2f')} | {_num(o['genre_fidelity'], '.2f')} "
              f"({_num(o['real']['genre_fidelity'], '.2f')}) | {_num(o['decade_acc'], '.2f')} "
              f"({_num(o['real']['decade_acc'], '.2f')}) | {_num(pick.get('signal'), '.2f')} "
              f"({_num(pick.get('samples'), '.2f')}, {_num(pick.get('real'), '.2f')}) | "
              f"{_num(by_steerer.get('genre_fidelity'), '.2f')} ({_num(steering.get('fidelity_gap'), '+.2f')}) | "
              f"{_num(o.get('condition_effect'), '.2f')} | "
              f"{_num(o.get('genre_effect'), '.2f')} ({_num(o.get('genre_effect_blurred'), '.2f')}) | "
              f"{_num(o.get('decade_effect'), '.2f')} ({_num(o.get('decade_effect_blurred'), '.2f')}) | "
              f"{_num(memo.get('share'), '.1%')} ({_num(memo.get('real_test_share'), '.1%')}) | "
              + (f"{c['map_ratio']:.2f} ({_num(c['map_ratio_above_chance'], '.2f')}) | {_num(c['decade_ratio'], '.2f')} |"
                 if c else "- | - |"))


if __name__ == "__main__":
    main()
