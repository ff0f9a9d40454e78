"""Bach's four-part chorales from music21's corpus -> eighth-note scores [4, T] for training Coconet.

    nice -n 19 .venv/bin/python training/music/prepare_chorales.py    # -> training/music/data/chorales.npz

Every chorale of `music21.corpus.chorales.Iterator()` with parts named Soprano, Alto, Tenor and Bass is
used (others, with instruments or unnamed spines, are skipped). Each part is sampled on the eighth-note
grid: the (highest) pitch sounding at each step, or a rest. Split by chorale (stable hash of the BWV
file name, 10% held out). Bach's chorales are public domain; music21 (BSD-3-Clause) ships the encodings.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

from genstudio.music.coconet import STEPS_PER_QUARTER, CoconetConfig, to_class  # noqa: E402

NAMES = ("Soprano", "Alto", "Tenor", "Bass")


def chorale_score(score, config: CoconetConfig) -> np.ndarray | None:  # noqa: ANN001 -- a music21 Score
    parts = {p.id: p for p in score.parts}
    if not all(n in parts for n in NAMES):
        return None
    length = max(float(parts[n].highestTime) for n in NAMES)
    steps = int(round(length * STEPS_PER_QUARTER))
    out = np.zeros((4, steps), np.uint8)
    for v, name in enumerate(NAMES):
        for el in parts[name].flatten().notes:
            pitch = max(p.midi for p in el.pitches)
            a = int(round(float(el.offset) * STEPS_PER_QUARTER))
            b = int(round(float(el.offset + el.quarterLength) * STEPS_PER_QUARTER))
            if b <= a:
                continue
            try:
                out[v, a:b] = to_class(pitch, config)
            except ValueError:
                return None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE / "data")
    ap.add_argument("--valid-percent", type=float, default=10.0)
    args = ap.parse_args()
    from music21 import corpus

    config = CoconetConfig()
    rows: dict[str, list[np.ndarray]] = {"train": [], "valid": []}
    names: dict[str, list[str]] = {"train": [], "valid": []}
    skipped = []
    seen: set[bytes] = set()
    for f in corpus.chorales.Iterator(returnType="filename"):
        s = chorale_score(corpus.parse(f), config)
        if s is None:
            skipped.append(f)
            continue
        if s.tobytes() in seen:  # the same chorale under two numbers
            skipped.append(f + " (duplicate)")
            continue
        seen.add(s.tobytes())
        h = int(hashlib.sha1(f.encode()).hexdigest()[:8], 16)
        split = "valid" if (h % 10000) < args.valid_percent * 100 else "train"
        rows[split].append(s)
        names[split].append(f)
    out = {}
    stats: dict[str, object] = {"skipped": skipped, "min_pitch": config.min_pitch, "max_pitch": config.max_pitch}
    for split in ("train", "valid"):
        lengths = np.array([r.shape[1] for r in rows[split]], np.int64)
        out[split] = np.concatenate(rows[split], axis=1)
        out[f"{split}_offsets"] = np.concatenate([[0], np.cumsum(lengths)])
        out[f"{split}_names"] = np.array(names[split])
        stats[f"{split}_chorales"] = len(rows[split])
        stats[f"{split}_steps"] = int(lengths.sum())
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "chorales.npz", **out)
    (args.out / "chorales.json").write_text(json.dumps(stats, indent=1) + "\n")
    print(json.dumps({k: v for k, v in stats.items() if k != "skipped"}), len(skipped), "skipped")


if __name__ == "__main__":
    main()
