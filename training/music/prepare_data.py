"""Parse music21's folk-tune corpus and cache 2-bar melody windows for training the melody VAE.

    nice -n 19 .venv/bin/python training/music/prepare_data.py                  # public-domain tune books
    nice -n 19 .venv/bin/python training/music/prepare_data.py --include-essen  # + Essen (NON-COMMERCIAL)
    nice -n 19 .venv/bin/python training/music/prepare_data.py --steps 256      # 16-bar windows (pd-256)
    nice -n 19 .venv/bin/python training/music/prepare_data.py --steps 256 --paired  # + two 8-bar phrases (pd-256p)
    nice -n 19 .venv/bin/python training/music/prepare_data.py --steps 128      # 8-bar windows (pd-128)

Parsed tunes are cached in training/music/data/parsed/SOURCE.jsonl (an interrupted run resumes);
windows go to training/music/data/windows-TAG.npz with statistics in windows-TAG.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

from genstudio.music.data import DEFAULT_SOURCES, SOURCES, make_windows, parse_source  # noqa: E402
from genstudio.music.encoding import MelodyEncoding  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE / "data")
    ap.add_argument(
        "--include-essen",
        action="store_true",
        help="add the Essen collection: licensed for NON-COMMERCIAL use only; weights trained on it inherit that",
    )
    ap.add_argument("--steps", type=int, default=32, help="window length in 16th notes")
    ap.add_argument("--valid-percent", type=float, default=10.0)
    ap.add_argument(
        "--paired",
        action="store_true",
        help="also make long windows from two consecutive half-length phrases of a tune (tag gets a 'p')",
    )
    ap.add_argument("--min-notes", type=int, default=2)
    ap.add_argument("--min-pitch", type=int, default=21)
    ap.add_argument("--max-pitch", type=int, default=108)
    args = ap.parse_args()

    names = list(DEFAULT_SOURCES) + (["essenFolksong"] if args.include_essen else [])
    tag = "pd+essen" if args.include_essen else "pd"
    if args.steps != 32:
        tag += f"-{args.steps}" + ("p" if args.paired else "")
    encoding = MelodyEncoding(args.min_pitch, args.max_pitch)
    tunes = []
    per_source = {}
    for name in names:
        got = parse_source(
            SOURCES[name], args.out, lambda it, n, d: tqdm(it, total=n, desc=f"parsing {d}", mininterval=5)
        )
        per_source[name] = len(got)
        print(f"{name}: {len(got)} tunes", flush=True)
        tunes += got
    result = make_windows(tunes, encoding, args.steps, args.valid_percent, args.min_notes, paired=args.paired)
    stats = {
        **result.pop("stats"),
        "sources": {n: {"tunes": per_source[n], "licence": SOURCES[n].licence} for n in names},
        "steps": args.steps,
        "min_pitch": args.min_pitch,
        "max_pitch": args.max_pitch,
        "valid_percent": args.valid_percent,
        "min_notes": args.min_notes,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = args.out / f".windows-{tag}.tmp.npz"
    np.savez_compressed(tmp, **result)
    tmp.rename(args.out / f"windows-{tag}.npz")
    (args.out / f"windows-{tag}.json").write_text(json.dumps(stats, indent=1) + "\n")
    print(json.dumps({k: v for k, v in stats.items() if k != "sources"}, indent=1))


if __name__ == "__main__":
    main()
