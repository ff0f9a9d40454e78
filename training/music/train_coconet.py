"""Train Coconet (genstudio.music.coconet) on Bach's chorales; resumes from the run's latest checkpoint.

    .venv/bin/python training/music/prepare_chorales.py
    nohup nice -n 19 .venv/bin/python training/music/train_coconet.py --name coconet-lite-v1 --max-minutes 90 &

Random crops of `crop` eighth notes, transposed by -5..+5 semitones where every voice stays in range;
masks as in `random_masks` (half orderless, half whole voices). Adam, lr 1e-3 decaying to 1e-4.
Held-out metric: the share of a masked voice's steps recovered (argmax), each voice masked in turn
(the paper's one-voice setting), on whole held-out chorales. Checkpoints (model + optimizer + step)
every few minutes in runs/NAME/; `export-STEP/` folders load with Coconet.from_pretrained.
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))
sys.path.insert(0, str(HERE))

import checkpoint  # noqa: E402

from genstudio.music.coconet import CONFIGS, Coconet, CoconetConfig, random_masks  # noqa: E402


def crops(data: np.ndarray, offsets: np.ndarray, crop: int, b: int, gen: torch.Generator, cfg: CoconetConfig):
    """B random crops [B, 4, crop] (whole chorales of at least `crop` steps), randomly transposed."""
    n = len(offsets) - 1
    out = np.zeros((b, 4, crop), np.int64)
    for i in range(b):
        while True:
            c = int(torch.randint(n, (1,), generator=gen))
            a, e = offsets[c], offsets[c + 1]
            if e - a >= crop:
                break
        s = a + int(torch.randint(int(e - a - crop + 1), (1,), generator=gen))
        x = data[:, s : s + crop].astype(np.int64)
        on = x > 0
        shift = int(torch.randint(-5, 6, (1,), generator=gen))
        if on.any():
            shift = max(shift, 1 - int(x[on].min()))
            shift = min(shift, cfg.num_classes - 1 - int(x[on].max()))
        out[i] = np.where(on, x + shift, 0)
    return torch.from_numpy(out)


@torch.no_grad()
def voice_recovery(model: Coconet, data: np.ndarray, offsets: np.ndarray) -> dict[str, float]:
    """Per voice: share of its steps whose argmax equals Bach's when that voice alone is masked."""
    model.eval()
    hits = np.zeros(4)
    total = np.zeros(4)
    for c in range(len(offsets) - 1):
        x = torch.from_numpy(data[:, offsets[c] : offsets[c + 1]].astype(np.int64))[None]
        for v in range(4):
            mask = torch.zeros_like(x, dtype=torch.float32)
            mask[:, v] = 1.0
            pred = model(x, mask).argmax(-1)
            hits[v] += float((pred[0, v] == x[0, v]).sum())
            total[v] += x.shape[-1]
    model.train()
    rec = hits / total
    return {"soprano": rec[0], "alto": rec[1], "tenor": rec[2], "bass": rec[3], "mean": float(rec.mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="coconet-lite-v1")
    ap.add_argument("--config", default="lite", choices=sorted(CONFIGS))
    ap.add_argument("--data", type=Path, default=HERE / "data" / "chorales.npz")
    ap.add_argument("--runs", type=Path, default=HERE / "runs")
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-half-life", type=float, default=3000.0, help="steps for the lr to halve (floor 1e-4)")
    ap.add_argument("--max-minutes", type=float, default=60.0)
    ap.add_argument("--max-steps", type=int, default=10**9)
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run = args.runs / args.name
    run.mkdir(parents=True, exist_ok=True)
    cfg_path = run / "config.json"
    config = CoconetConfig.from_dict(json.loads(cfg_path.read_text())) if cfg_path.exists() else CONFIGS[args.config]
    cfg_path.write_text(json.dumps(config.to_dict(), indent=1) + "\n")
    d = np.load(args.data)
    train, toff, valid, voff = d["train"], d["train_offsets"], d["valid"], d["valid_offsets"]

    torch.manual_seed(args.seed)
    model = Coconet(config).train()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    step, elapsed = checkpoint.resume(run, model, opt, gen)
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params", flush=True)

    def save() -> None:
        checkpoint.save(run, step, elapsed, model, opt, gen)

    vpath = run / "valid.csv"
    new = not vpath.exists()
    vlog = vpath.open("a", newline="")
    vw = csv.writer(vlog)
    if new:
        vw.writerow(["step", "elapsed_min", "soprano", "alto", "tenor", "bass", "mean"])

    def evaluate() -> None:
        m = voice_recovery(model, valid, voff)
        vw.writerow(
            [step, f"{elapsed / 60:.2f}"] + [f"{m[k]:.4f}" for k in ("soprano", "alto", "tenor", "bass", "mean")]
        )
        vlog.flush()
        print(f"valid @ {step}: " + " ".join(f"{k} {v:.3f}" for k, v in m.items()), flush=True)

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
    deadline = time.time() + args.max_minutes * 60
    last = time.time()
    sums, n_win, t_win = {"loss": 0.0, "accuracy": 0.0}, 0, time.time()
    while time.time() < deadline and step < args.max_steps and not stop["now"]:
        t0 = time.time()
        lr = max(1e-4, args.lr * 0.5 ** (step / args.lr_half_life))
        for g in opt.param_groups:
            g["lr"] = lr
        x = crops(train, toff, config.crop, args.batch, gen, config)
        mask = random_masks(args.batch, config.crop, gen)
        terms = model.loss(x, mask)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        elapsed += time.time() - t0
        for k in sums:
            sums[k] += float(terms[k].detach())
        n_win += 1
        if step % 50 == 0:
            print(
                f"step {step} {elapsed / 60:.1f} min loss {sums['loss'] / n_win:.3f} "
                f"acc {sums['accuracy'] / n_win:.3f} "
                f"lr {lr:.1e} {(time.time() - t_win) / n_win:.2f} s/step",
                flush=True,
            )
            sums, n_win, t_win = {k: 0.0 for k in sums}, 0, time.time()
        if step % args.eval_every == 0:
            evaluate()
        if time.time() - last > args.ckpt_minutes * 60:
            save()
            last = time.time()
    save()
    evaluate()
    print(f"done: step {step}, {elapsed / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
