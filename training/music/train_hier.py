"""Train the hierarchical (16-bar) melody VAE on top of the 2-bar model; resumes from the run's latest
checkpoint.

    .venv/bin/python training/music/prepare_data.py --steps 256          # -> data/windows-pd-256.npz
    nohup nice -n 19 .venv/bin/python training/music/train_hier.py --name hier16-v1 --max-minutes 100 &

The bar level starts from the shipped 2-bar model (`--bar`): its encoder stays frozen, its decoder is
fine-tuned at a lower learning rate; the top encoder and the conductor are trained from scratch.
Held-out metric: teacher-forced token accuracy with z = mu on whole 16-bar windows of held-out tunes.
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
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(HERE))

import checkpoint  # noqa: E402

from genstudio.music.data import WindowBatches  # noqa: E402
from genstudio.music.hierarchical import HierarchicalMusicVAE, HierConfig  # noqa: E402
from genstudio.music.model import MusicVAE  # noqa: E402


@torch.no_grad()
def evaluate(model: HierarchicalMusicVAE, valid: torch.Tensor) -> dict[str, float]:
    model.eval()
    hit = events = event_hit = total = 0.0
    kl = code_err = 0.0
    for i in range(0, len(valid), 64):
        x = valid[i : i + 64]
        mu, sigma = model.encode(x)
        codes = model.conduct(mu, x.shape[1] // model.config.seg_steps)
        logits = model.bar.decode_teacher_forced(model.split(x), codes.reshape(-1, codes.shape[-1]))
        pred = logits.argmax(-1).view(x.shape)
        code_err += float(model.code_error(codes, *model.segment_posteriors(x)).sum())
        hit += float((pred == x).sum())
        total += x.numel()
        ev = x > 0
        events += float(ev.sum())
        event_hit += float(((pred == x) & ev).sum())
        kl += float((0.5 * (sigma.square() + mu.square() - 1.0 - 2.0 * torch.log(sigma + 1e-12)).sum(1)).sum())
    model.train()
    model.bar.encoder.eval()
    return {
        "accuracy": hit / total,
        "event_accuracy": event_hit / max(events, 1.0),
        "kl_bits": kl / len(valid) / np.log(2.0),
        "no_event_baseline": 1.0 - events / total,
        "code_error": code_err / len(valid),
    }


@torch.no_grad()
def all_codes(model: HierarchicalMusicVAE, batches: WindowBatches, shifts: range) -> torch.Tensor:
    """The bar encoder's posteriors of every window at every transposition in `shifts` that keeps it in
    range: [N, 2, S, Zb] (mu, sigma)."""
    out = []
    x0 = batches.tokens
    for shift in shifts:
        ok = (batches.lo + shift >= 2) & (batches.hi + shift <= model.num_classes - 1)
        x = torch.where(x0 >= 2, x0 + shift, x0)[ok]
        for i in range(0, len(x), 512):
            out.append(torch.stack(model.segment_posteriors(x[i : i + 512]), dim=1))
    return torch.cat(out)  # [N, 2 (mu, sigma), S, Zb]


def pretrain_codes(model: HierarchicalMusicVAE, sets: list[WindowBatches], args, gen: torch.Generator) -> None:  # noqa: ANN001
    """Stage 1: the top encoder and conductor as a VAE of segment-code sequences (squared error + the KL
    term), on precomputed codes of every training window at every transposition -5..+5."""
    t0 = time.time()
    codes = [all_codes(model, b, range(-5, 6)) for b in sets]
    print(f"pretrain: codes of {[len(c) for c in codes]} windows in {time.time() - t0:.0f} s", flush=True)
    params = [p for n, p in model.named_parameters() if not n.startswith("bar.")]
    opt = torch.optim.Adam(params, lr=1e-3)
    cfg = model.config
    for i in range(args.pretrain_steps):
        c = codes[i % len(codes)]
        idx = torch.randint(len(c), (256,), generator=gen)
        x, sx = c[idx, 0], c[idx, 1]
        _, (h, _) = model.top_encoder(x)
        final = torch.cat([h[-2], h[-1]], dim=-1)
        mu, sigma = model.to_mu(final), torch.nn.functional.softplus(model.to_sigma(final))
        z = mu + sigma * torch.randn(mu.shape, generator=gen)
        err = model.code_error(model.conduct(z, x.shape[1]), x, sx)
        kl = 0.5 * (sigma.square() + mu.square() - 1.0 - 2.0 * torch.log(sigma + 1e-12)).sum(1)
        loss = err.mean() + cfg.max_beta * torch.clamp(kl - cfg.free_bits * np.log(2.0), min=0.0).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if (i + 1) % 500 == 0:
            print(
                f"pretrain {i + 1}: code error {float(err.mean()):.2f} "
                f"(per segment {float(err.mean()) / x.shape[1]:.2f}),"
                f" kl {float(kl.mean()) / np.log(2.0):.0f} bits, {time.time() - t0:.0f} s",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="hier16-v1")
    ap.add_argument("--bar", type=Path, default=ROOT / "src/genstudio/builtin_models/melody-2bar")
    ap.add_argument("--data", type=Path, default=HERE / "data" / "windows-pd-256.npz")
    ap.add_argument(
        "--short-data",
        type=Path,
        default=HERE / "data" / "windows-pd-128.npz",
        help="8-bar windows mixed in (every other batch): many more tunes have 8 full bars in a row than 16",
    )
    ap.add_argument("--runs", type=Path, default=HERE / "runs")
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--max-minutes", type=float, default=60.0)
    ap.add_argument("--max-steps", type=int, default=10**9)
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-windows", type=int, default=1024)
    ap.add_argument(
        "--pretrain-steps",
        type=int,
        default=0,
        help="first train the top encoder and conductor in code space only (squared error to the bar "
        "encoder's codes, no decoder pass): thousands of steps a minute on a CPU",
    )
    ap.add_argument(
        "--long-every",
        type=int,
        default=2,
        help="one batch in this many is of 16-bar windows (the rest 8-bar) when --short-data is present",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run = args.runs / args.name
    run.mkdir(parents=True, exist_ok=True)

    d = np.load(args.data)
    bar = MusicVAE.from_pretrained(args.bar)
    cfg_path = run / "config.json"
    if cfg_path.exists():
        config = HierConfig.from_dict(json.loads(cfg_path.read_text()))
    else:
        config = HierConfig(
            bar=bar.config,
            segments=d["train"].shape[1] // bar.config.max_seq_len,
            description="genstudio's long-melody model: a conductor over the built-in 2-bar model (16 bars).",
        )
    cfg_path.write_text(json.dumps(config.to_dict(), indent=1) + "\n")
    torch.manual_seed(args.seed)
    model = HierarchicalMusicVAE(config, bar).train()
    for p in model.bar.encoder.parameters():
        p.requires_grad_(False)
    for p in list(model.bar.to_mu.parameters()) + list(model.bar.to_sigma.parameters()):
        p.requires_grad_(False)
    model.bar.encoder.eval()
    bar_params = [p for n, p in model.named_parameters() if n.startswith("bar.") and p.requires_grad]
    top_params = [p for n, p in model.named_parameters() if not n.startswith("bar.")]
    opt = torch.optim.Adam(
        [{"params": top_params, "lr": config.learning_rate}, {"params": bar_params, "lr": config.bar_learning_rate}]
    )
    train = WindowBatches(d["train"], config.bar.num_classes, 5)
    short = np.load(args.short_data) if args.short_data and args.short_data.exists() else None
    train_short = WindowBatches(short["train"], config.bar.num_classes, 5) if short is not None else None
    valid = torch.from_numpy(d["valid"].astype(np.int64))
    if len(valid) > args.eval_windows:
        pick = torch.randperm(len(valid), generator=torch.Generator().manual_seed(1234))[: args.eval_windows]
        valid = valid[pick.sort().values]
    gen = torch.Generator().manual_seed(args.seed)
    step, elapsed = checkpoint.resume(run, model, opt, gen)
    print(
        f"{sum(p.numel() for p in top_params) / 1e6:.2f} M new params; {len(train.tokens)} train windows, "
        f"{len(valid)} valid",
        flush=True,
    )

    def save() -> None:
        checkpoint.save(run, step, elapsed, model, opt, gen)

    vpath = run / "valid.csv"
    new = not vpath.exists()
    vlog = vpath.open("a", newline="")
    vw = csv.writer(vlog)
    if new:
        vw.writerow(
            [
                "step",
                "elapsed_min",
                "accuracy",
                "event_accuracy",
                "kl_bits",
                "no_event_baseline",
                "code_error",
                "accuracy_8bar",
            ]
        )

    valid_short = torch.from_numpy(short["valid"].astype(np.int64))[: args.eval_windows] if short is not None else None

    def run_eval() -> None:
        m = evaluate(model, valid)
        if valid_short is not None:
            m["accuracy_8bar"] = evaluate(model, valid_short)["accuracy"]
        vw.writerow([step, f"{elapsed / 60:.2f}"] + [f"{m[k]:.4f}" for k in m])
        vlog.flush()
        print(f"valid @ {step}: " + " ".join(f"{k} {v:.4f}" for k, v in m.items()), flush=True)

    if step == 0 and args.pretrain_steps:
        pretrain_codes(model, [train, train_short] if train_short is not None else [train], args, gen)
        save()
    if step == 0:
        run_eval()
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
    deadline = time.time() + args.max_minutes * 60
    last = time.time()
    sums: dict[str, float] = {}
    n_win, t_win = 0, time.time()
    params = top_params + bar_params
    while time.time() < deadline and step < args.max_steps and not stop["now"]:
        t0 = time.time()
        use_short = train_short is not None and step % args.long_every != 0
        x = train_short.batch(args.batch * 2, gen) if use_short else train.batch(args.batch, gen)
        out = model(x, gen)
        terms = model.loss(x, out, step)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        elapsed += time.time() - t0
        for k, v in terms.items():
            if not use_short:  # the log shows the 16-bar batches
                sums[k] = sums.get(k, 0.0) + float(v.detach())
        n_win += not use_short
        if step % 26 == 0:
            print(
                f"step {step} {elapsed / 60:.1f} min "
                + " ".join(f"{k} {v / n_win:.3f}" for k, v in sums.items())
                + f" {(time.time() - t_win) / n_win:.2f} s/step",
                flush=True,
            )
            sums, n_win, t_win = {}, 0, time.time()
        if step % args.eval_every == 0:
            run_eval()
        if time.time() - last > args.ckpt_minutes * 60:
            save()
            last = time.time()
    save()
    run_eval()
    print(f"done: step {step}, {elapsed / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
