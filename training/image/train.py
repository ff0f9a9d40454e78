"""Train the built-in emoji UNet on pre-encoded captions; resumes from the latest checkpoint.

    nohup nice -n 10 .venv/bin/python training/image/train.py --name emoji-tiny-v1 --max-minutes 100 \
        > training/image/runs/emoji-tiny-v1/train.log 2>&1 &

Every checkpoint (model, EMA, optimizer, step, RNG; safetensors + JSON) also exports the EMA weights
as a diffusers folder runs/NAME/export-STEP/ that GenStudioTinyPipeline.from_folder loads.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

from genstudio.image.tiny_pipeline import build_scheduler, build_unet, write_model_folder  # noqa: E402


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="emoji-tiny-v1")
    ap.add_argument("--data", type=Path, default=HERE / "data" / "emoji32.npz")
    ap.add_argument("--runs", type=Path, default=HERE / "runs")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--min-snr", type=float, default=5.0)
    ap.add_argument("--caption-dropout", type=float, default=0.1)
    ap.add_argument("--max-minutes", type=float, default=100.0, help="wall-clock limit of this invocation")
    ap.add_argument("--max-steps", type=int, default=10**9)
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--keep-ckpts", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


class Data:
    """Training captions (held-out emoji removed) with their images and token states in memory."""

    def __init__(self, path: Path) -> None:
        d = np.load(path)
        keep = ~d["held_out"][d["cap_image"]]
        self.cap_image = torch.from_numpy(d["cap_image"][keep])
        self.cap_text = torch.from_numpy(d["cap_text_id"][keep])
        self.images = torch.from_numpy(d["images"]).permute(0, 3, 1, 2).contiguous()  # uint8 [N, 3, 32, 32]
        self.states = torch.from_numpy(d["text_states"])  # fp16 [T, 16, 384]
        self.mask = torch.from_numpy(d["text_mask"]).long()
        self.empty = int(d["empty_text_id"])
        self.n_images = int(torch.unique(self.cap_image).numel())

    def batch(self, n: int, dropout: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self.cap_image), (n,), generator=gen)
        text = self.cap_text[idx].clone()
        text[torch.rand(n, generator=gen) < dropout] = self.empty
        x = self.images[self.cap_image[idx]].float() / 127.5 - 1.0
        return F.pixel_unshuffle(x, 2), self.states[text].float(), self.mask[text]


def opt_state_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
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


def save_checkpoint(run: Path, step: int, unet, ema, opt, gen, elapsed: float, keep: int, scheduler) -> None:
    if (run / f"ckpt-{step:07d}").exists():
        return
    tmp = run / f".ckpt-{step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, tmp / "model.safetensors")
    save_file({k: v.contiguous() for k, v in ema.state_dict().items()}, tmp / "ema.safetensors")
    tensors, groups = opt_state_tensors(opt)
    save_file(tensors, tmp / "optimizer.safetensors")
    save_file({"torch_rng": gen.get_state(), "global_rng": torch.get_rng_state()}, tmp / "rng.safetensors")
    (tmp / "state.json").write_text(json.dumps({"step": step, "elapsed_s": elapsed, "param_groups": groups}))
    tmp.rename(run / f"ckpt-{step:07d}")
    export_tmp = run / f".export-{step:07d}.tmp"
    shutil.rmtree(export_tmp, ignore_errors=True)
    write_model_folder(export_tmp, ema, scheduler)
    export_tmp.rename(run / f"export-{step:07d}")
    for old in sorted(run.glob("ckpt-*"))[:-keep]:
        shutil.rmtree(old)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    run = args.runs / args.name
    run.mkdir(parents=True, exist_ok=True)
    data = Data(args.data)
    scheduler = build_scheduler()
    alphas = scheduler.alphas_cumprod
    snr = alphas / (1 - alphas)
    # min-SNR-gamma weight for v-prediction (Hang et al. 2023): min(snr, gamma) / (snr + 1).
    loss_weight = torch.clamp(snr, max=args.min_snr) / (snr + 1)

    torch.manual_seed(args.seed)
    unet = build_unet().train()
    ema = build_unet().eval().requires_grad_(False)
    ema.load_state_dict(unet.state_dict())
    opt = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(args.seed)
    step, elapsed = 0, 0.0

    ckpts = sorted(run.glob("ckpt-*"))
    if ckpts:
        last = ckpts[-1]
        unet.load_state_dict(load_file(last / "model.safetensors"))
        ema.load_state_dict(load_file(last / "ema.safetensors"))
        state = json.loads((last / "state.json").read_text())
        load_opt_state(opt, load_file(last / "optimizer.safetensors"), state["param_groups"])
        rng = load_file(last / "rng.safetensors")
        gen.set_state(rng["torch_rng"])
        torch.set_rng_state(rng["global_rng"])
        step, elapsed = state["step"], state["elapsed_s"]
        print(f"resumed from {last.name}: step {step}, {elapsed / 60:.1f} min trained", flush=True)
    else:
        (run / "args.json").write_text(json.dumps({k: str(v) for k, v in vars(args).items()}, indent=1))
    n_params = sum(p.numel() for p in unet.parameters())
    print(f"{n_params / 1e6:.2f} M params; {len(data.cap_image)} captions over {data.n_images} images", flush=True)

    log_path = run / "loss.csv"
    new_log = not log_path.exists()
    log = log_path.open("a", newline="")
    writer = csv.writer(log)
    if new_log:
        writer.writerow(["step", "elapsed_min", "loss", "s_per_step", "lr"])

    ema_params = list(ema.parameters())
    params = list(unet.parameters())
    last_ckpt = time.time()
    window_loss, window_n, window_t = 0.0, 0, time.time()
    deadline = time.time() + args.max_minutes * 60
    while time.time() < deadline and step < args.max_steps:
        t0 = time.time()
        lr = args.lr * min(1.0, (step + 1) / args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        x0, states, mask = data.batch(args.batch, args.caption_dropout, gen)
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (args.batch,), generator=gen)
        noisy = scheduler.add_noise(x0, noise, t)
        target = scheduler.get_velocity(x0, noise, t)
        pred = unet(noisy, t, states, encoder_attention_mask=mask).sample
        loss = ((pred - target) ** 2).mean(dim=(1, 2, 3))
        loss = (loss * loss_weight[t]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, [p.detach() for p in params], 1 - decay)
        elapsed += time.time() - t0
        window_loss += loss.item()
        window_n += 1
        if step % 50 == 0:
            sps = (time.time() - window_t) / window_n
            writer.writerow([step, f"{elapsed / 60:.2f}", f"{window_loss / window_n:.5f}", f"{sps:.3f}", f"{lr:.2e}"])
            log.flush()
            print(f"step {step} {elapsed / 60:.1f} min loss {window_loss / window_n:.4f} {sps:.3f} s/step", flush=True)
            window_loss, window_n, window_t = 0.0, 0, time.time()
        if time.time() - last_ckpt > args.ckpt_minutes * 60:
            save_checkpoint(run, step, unet, ema, opt, gen, elapsed, args.keep_ckpts, scheduler)
            last_ckpt = time.time()
            print(f"checkpoint {step}", flush=True)
    save_checkpoint(run, step, unet, ema, opt, gen, elapsed, args.keep_ckpts, scheduler)
    print(f"done: step {step}, {elapsed / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
