"""Quality figures of a melody VAE folder against held-out tunes (the valid split of prepare_data.py).

    nice -n 19 .venv/bin/python training/music/evaluate.py training/music/runs/lite-pd-v1/export-0001234

Teacher-forced token accuracy (z = mu) and greedy reconstruction accuracy on the valid windows, and for
samples at a few temperatures: share of notes in the best-fitting diatonic key (per 2-bar melody),
notes per melody and pitch range, next to the real windows and a random baseline (real rhythms, pitches
uniform over each window's own range). Prints JSON; --out writes it too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

from genstudio.music.encoding import NO_EVENT, Note  # noqa: E402
from genstudio.music.metrics import melody_stats, teacher_forced_metrics  # noqa: E402
from genstudio.music.model import MelodyVAE  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--data", type=Path, default=HERE / "data" / "windows-pd.npz")
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--temperatures", default="0.5,1.0")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)

    vae = MelodyVAE.from_pretrained(args.model)
    valid = torch.from_numpy(np.load(args.data)["valid"].astype(np.int64))
    report: dict[str, object] = {"model": str(args.model), "valid_windows": len(valid)}
    report["teacher_forced"] = teacher_forced_metrics(vae.model, valid)
    with torch.no_grad():
        mu, _ = vae.model.encode(valid)
        recon = torch.cat([vae.model.decode_tokens(mu[i : i + 512], 0.0) for i in range(0, len(mu), 512)])
    report["greedy_reconstruction_accuracy"] = float((recon == valid).float().mean())
    real = vae.melodies(valid)
    rng = np.random.default_rng(0)
    rand = [
        [Note(int(rng.integers(min(x.pitch for x in m), max(x.pitch for x in m) + 1)), n.start, n.end) for n in m]
        for m in real
    ]
    report["real"] = melody_stats(real)
    report["random"] = melody_stats(rand)
    for t in (float(x) for x in args.temperatures.split(",")):
        report[f"samples_T{t:g}"] = melody_stats(vae.sample(args.samples, temperature=t, seed=0))
    report["no_event_share_valid"] = float((valid == NO_EVENT).float().mean())
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
