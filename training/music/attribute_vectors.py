"""Latent attribute vectors for a melody model (MusicVAE paper, section 5.4): the mean code of training
windows with much of an attribute minus the mean code of windows with little of it.

Writes `attributes.json` beside the weights; the studio adds `density * scale * vector` to z.

    .venv/bin/python training/music/attribute_vectors.py src/genstudio/builtin_models/melody-2bar
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from genstudio.music.encoding import FIRST_NOTE_ON
from genstudio.music.model import MusicVAE

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--data", type=Path, default=HERE / "data" / "windows-pd.npz")
    ap.add_argument("--quantile", type=float, default=0.25, help="top/bottom share of windows compared")
    args = ap.parse_args()
    torch.set_num_threads(1)

    model = MusicVAE.from_pretrained(args.model)
    tokens = np.load(args.data)["train"].astype(np.int64)
    notes = (tokens >= FIRST_NOTE_ON).sum(1)
    with torch.no_grad():
        mu = torch.cat([model.encode(torch.from_numpy(tokens[i : i + 1024]))[0] for i in range(0, len(tokens), 1024)])
    lo, hi = np.quantile(notes, [args.quantile, 1 - args.quantile])
    busy, sparse = torch.from_numpy(notes >= hi), torch.from_numpy(notes <= lo)
    vector = (mu[busy].mean(0) - mu[sparse].mean(0)) / 2.0
    out = {
        "density": {
            "vector": [round(float(v), 6) for v in vector],
            "scale": 1.0,
            "about": "half the difference between the mean codes of the busiest and sparsest "
            f"{args.quantile:.0%} of training windows (notes per 2 bars >= {hi:g} vs <= {lo:g})",
            "windows": int(len(tokens)),
            "notes_mean_busy": float(notes[notes >= hi].mean()),
            "notes_mean_sparse": float(notes[notes <= lo].mean()),
            "data": args.data.name,
        }
    }
    tmp = args.model / ".attributes.json.tmp"
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    os.replace(tmp, args.model / "attributes.json")
    print(f"density vector |v| = {vector.norm():.3f}; busy >= {hi:g} notes, sparse <= {lo:g} notes per window")


if __name__ == "__main__":
    main()
