"""Fit the long-melody model's sampling prior: a full-covariance Gaussian over the posterior means of the
training windows (8-bar and 16-bar, each at every transposition -5..+5 that stays in range).

    .venv/bin/python training/music/fit_prior.py MODEL_DIR     # -> MODEL_DIR/prior.safetensors, prior.json

`LongMelodyVAE` samples z from it (and fits Continue's z under it) instead of N(0, I): see its docstring.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

from genstudio.music.encoding import FIRST_NOTE_ON  # noqa: E402
from genstudio.music.hierarchical import PRIOR_FILE, HierarchicalMusicVAE  # noqa: E402


@torch.no_grad()
def posterior_means(model: HierarchicalMusicVAE, tokens: np.ndarray) -> torch.Tensor:
    x0 = torch.from_numpy(tokens.astype(np.int64))
    on = x0 >= FIRST_NOTE_ON
    lo = torch.where(on, x0, torch.full_like(x0, 10**6)).min(1).values
    hi = torch.where(on, x0, torch.zeros_like(x0)).max(1).values
    out = []
    for shift in range(-5, 6):
        keep = (lo + shift >= FIRST_NOTE_ON) & (hi + shift <= model.num_classes - 1)
        x = torch.where(x0 >= FIRST_NOTE_ON, x0 + shift, x0)[keep]
        for i in range(0, len(x), 512):
            out.append(model.encode(x[i : i + 512])[0])
    return torch.cat(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument(
        "--data",
        type=Path,
        nargs="+",
        default=[HERE / "data" / "windows-pd-128.npz", HERE / "data" / "windows-pd-256.npz"],
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = HierarchicalMusicVAE.from_pretrained(args.model)
    mu = torch.cat([posterior_means(model, np.load(p)["train"]) for p in args.data])
    mean = mu.mean(0)
    cov = torch.cov(mu.T) + 1e-4 * torch.eye(mu.shape[1])
    tril = torch.linalg.cholesky(cov)
    save_file({"mean": mean.contiguous(), "scale_tril": tril.contiguous()}, args.model / PRIOR_FILE)
    info = {
        "windows": int(len(mu)),
        "data": [p.name for p in args.data],
        "transpositions": "-5..+5",
        "mean_norm": float(mean.norm()),
        "per_dimension_variance_mean": float(mu.var(0).mean()),
        "about": "Gaussian fitted to the posterior means of the training windows; z is sampled from it",
    }
    (args.model / "prior.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info))


if __name__ == "__main__":
    main()
