"""Train the melody VAE (MusicVAE cat-mel_2bar) on cached windows; resumes from the latest checkpoint.

    mkdir -p training/music/runs/lite-v1
    nohup nice -n 19 .venv/bin/python training/music/train.py --name lite-v1 --max-minutes 600 \\
        > training/music/runs/lite-v1/train.log 2>&1 &

Run it again with the same --name to resume (model, optimizer, step and RNG from runs/NAME/ckpt-*), or
with --resume-from a checkpoint folder elsewhere (e.g. training/music/checkpoints/...) into a fresh run.
Every checkpoint also exports runs/NAME/export-STEP/ (config.json + model.safetensors) for
MelodyVAE.from_pretrained. Logs: train.csv (training batches) and valid.csv (held-out tunes,
teacher-forced, z = mu) next to the checkpoints.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

from genstudio.music.data import WindowBatches  # noqa: E402
from genstudio.music.metrics import teacher_forced_metrics  # noqa: E402
from genstudio.music.model import CONFIG_MAP, MusicVAE, MusicVAEConfig  # noqa: E402

OVERRIDES = ("free_bits", "max_beta", "beta_rate", "sampling_schedule", "sampling_rate", "learning_rate", "batch_size")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="lite-v1")
    ap.add_argument("--config", default="cat-mel_2bar_lite", choices=sorted(CONFIG_MAP))
    ap.add_argument("--data", type=Path, default=HERE / "data" / "windows-pd.npz")
    ap.add_argument("--runs", type=Path, default=HERE / "runs")
    ap.add_argument("--resume-from", type=Path, help="a ckpt-* folder to start a fresh run from")
    ap.add_argument("--transpose", type=int, default=5, help="random transposition range, +- semitones")
    ap.add_argument("--max-minutes", type=float, default=60.0, help="wall-clock limit of this invocation")
    ap.add_argument("--max-steps", type=int, default=10**9)
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--keep-ckpts", type=int, default=2)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-windows", type=int, default=4096)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    for name in OVERRIDES:
        ap.add_argument("--" + name.replace("_", "-"), type=str if name == "sampling_schedule" else float)
    return ap.parse_args()


def opt_state_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    tensors: dict[str, torch.Tensor] = {}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            tensors[f"{i}.{k}"] = torch.as_tensor(v).clone().contiguous()
    return tensors, opt.state_dict()["param_groups"]


def load_opt_state(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        i, k = key.split(".", 1)
        state.setdefault(int(i), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(run: Path, step: int, model: MusicVAE, opt, gen, elapsed: float, keep: int) -> Path:
    final = run / f"ckpt-{step:07d}"
    if final.exists():
        return final
    tmp = run / f".ckpt-{step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)  # config.json + model.safetensors, so a checkpoint is also a model folder
    tensors, groups = opt_state_tensors(opt)
    save_file(tensors, tmp / "optimizer.safetensors")
    save_file({"torch_rng": gen.get_state(), "global_rng": torch.get_rng_state()}, tmp / "rng.safetensors")
    (tmp / "state.json").write_text(json.dumps({"step": step, "elapsed_s": elapsed, "param_groups": groups}))
    tmp.rename(final)
    export = run / f"export-{step:07d}"
    if not export.exists():
        model.save_pretrained(run / f".export-{step:07d}.tmp")
        (run / f".export-{step:07d}.tmp").rename(export)
    for old in sorted(run.glob("ckpt-*"))[:-keep]:
        shutil.rmtree(old)
    return final


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    run = args.runs / args.name
    run.mkdir(parents=True, exist_ok=True)

    cfg_path = run / "config.json"
    if cfg_path.exists():
        config = MusicVAEConfig.from_dict(json.loads(cfg_path.read_text()))
    elif args.resume_from is not None:
        # Fine-tuning from another run's checkpoint: its config, with any hyper-parameter given here.
        config = MusicVAEConfig.from_dict(json.loads((args.resume_from / "config.json").read_text()))
        changes = {k: getattr(args, k) for k in OVERRIDES if getattr(args, k) is not None}
        if "batch_size" in changes:
            changes["batch_size"] = int(changes["batch_size"])
        config = replace(config, **changes)
    else:
        changes = {k: getattr(args, k) for k in OVERRIDES if getattr(args, k) is not None}
        if "batch_size" in changes:
            changes["batch_size"] = int(changes["batch_size"])
        config = replace(CONFIG_MAP[args.config], **changes)
    cfg_path.write_text(json.dumps(config.to_dict(), indent=2) + "\n")

    d = np.load(args.data)
    train = WindowBatches(d["train"], config.num_classes, args.transpose)
    valid = torch.from_numpy(d["valid"].astype(np.int64))
    if len(valid) > args.eval_windows:
        pick = torch.randperm(len(valid), generator=torch.Generator().manual_seed(1234))[: args.eval_windows]
        valid = valid[pick.sort().values]

    torch.manual_seed(args.seed)
    model = MusicVAE(config).train()
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    gen = torch.Generator().manual_seed(args.seed)
    step, elapsed = 0, 0.0

    ckpts = sorted(run.glob("ckpt-*"))
    source = ckpts[-1] if ckpts else args.resume_from
    if source is not None:
        model.load_state_dict(load_file(source / "model.safetensors"))
        # A plain model folder (e.g. the shipped weights) has no state.json: start at step 0, Adam afresh.
        state_file = source / "state.json"
        state = json.loads(state_file.read_text()) if state_file.exists() else {"step": 0, "elapsed_s": 0.0}
        if (source / "optimizer.safetensors").exists():
            load_opt_state(opt, load_file(source / "optimizer.safetensors"), state["param_groups"])
        else:
            print("no optimizer state in the checkpoint: Adam starts afresh", flush=True)
        if (source / "rng.safetensors").exists():
            rng = load_file(source / "rng.safetensors")
            gen.set_state(rng["torch_rng"])
            torch.set_rng_state(rng["global_rng"])
        step, elapsed = state["step"], state["elapsed_s"]
        print(f"resumed from {source}: step {step}, {elapsed / 60:.1f} min trained", flush=True)
        (run / "resumed.txt").open("a").write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {source}\n")
    else:
        (run / "args.json").write_text(json.dumps({k: str(v) for k, v in vars(args).items()}, indent=1))
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"{n_params / 1e6:.2f} M params; {len(train.tokens)} train windows, {len(valid)} valid windows; "
        f"batch {config.batch_size}",
        flush=True,
    )

    def open_csv(name: str, header: list[str]):  # noqa: ANN202
        path = run / name
        new = not path.exists()
        f = path.open("a", newline="")
        w = csv.writer(f)
        if new:
            w.writerow(header)
        return f, w

    tlog, twriter = open_csv(
        "train.csv",
        ["step", "elapsed_min", "loss", "r_loss", "kl_bits", "beta", "accuracy", "sampling_p", "lr", "s_per_step"],
    )
    vlog, vwriter = open_csv(
        "valid.csv",
        ["step", "elapsed_min", "r_loss_per_step", "accuracy", "event_accuracy", "kl_bits", "no_event_baseline"],
    )

    stop = {"now": False}

    def on_term(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    def run_eval() -> None:
        m = teacher_forced_metrics(model, valid)
        vwriter.writerow([step, f"{elapsed / 60:.2f}"] + [f"{m[k]:.5f}" for k in m])
        vlog.flush()
        print(f"valid @ {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items()), flush=True)

    if step == 0:
        run_eval()
    params = list(model.parameters())
    last_ckpt = time.time()
    sums: dict[str, float] = {}
    window_n, window_t = 0, time.time()
    deadline = time.time() + args.max_minutes * 60
    while time.time() < deadline and step < args.max_steps and not stop["now"]:
        t0 = time.time()
        lr = config.learning_rate_at(step)
        for g in opt.param_groups:
            g["lr"] = lr
        p = config.sampling_probability(step)
        p = 0.0 if p < 0.01 else p  # below 1% the slower sampled-input path changes < 1 input token a row
        x = train.batch(config.batch_size, gen)
        out = model(x, sampling_probability=p, generator=gen)
        terms = model.loss(x, out, step)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        elapsed += time.time() - t0
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        window_n += 1
        if step % args.log_every == 0:
            sps = (time.time() - window_t) / window_n
            mean = {k: v / window_n for k, v in sums.items()}
            twriter.writerow(
                [step, f"{elapsed / 60:.2f}"]
                + [f"{mean[k]:.5f}" for k in ("loss", "r_loss", "kl_bits", "beta", "accuracy")]
                + [f"{p:.4f}", f"{lr:.2e}", f"{sps:.3f}"]
            )
            tlog.flush()
            print(
                f"step {step} {elapsed / 60:.1f} min loss {mean['loss']:.3f} kl {mean['kl_bits']:.1f} bits "
                f"acc {mean['accuracy']:.3f} p {p:.3f} {sps:.3f} s/step",
                flush=True,
            )
            sums, window_n, window_t = {}, 0, time.time()
        if step % args.eval_every == 0:
            run_eval()
        if time.time() - last_ckpt > args.ckpt_minutes * 60:
            save_checkpoint(run, step, model, opt, gen, elapsed, args.keep_ckpts)
            last_ckpt = time.time()
            print(f"checkpoint {step}", flush=True)
    save_checkpoint(run, step, model, opt, gen, elapsed, args.keep_ckpts)
    if step % args.eval_every:
        run_eval()
    print(f"done: step {step}, {elapsed / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
