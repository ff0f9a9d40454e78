"""Score exported emoji-tiny checkpoints: does a generated image land in the intended emoji group?

A small CNN trained on real 32 px emoji only (held-out emoji excluded) predicts the emojibase group of
images generated for 20 held-out prompts, 20 training prompts and random noise.

    .venv/bin/python training/image/evaluate.py --run training/image/runs/emoji-tiny-v1   # every export
    .venv/bin/python training/image/evaluate.py --model src/genstudio/builtin_models/emoji-tiny
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

from genstudio.image.tiny_pipeline import GenStudioTinyPipeline  # noqa: E402


class GroupCNN(nn.Module):
    """[B, 3, 32, 32] in [-1, 1] -> [B, n_groups] logits."""

    def __init__(self, n_groups: int) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )

        self.net = nn.Sequential(block(3, 32), block(32, 64), block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(128, n_groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x))


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shifts, blur and noise, so the classifier also reads the softer images a small model makes."""
    b = x.shape[0]
    pad = F.pad(x, (2, 2, 2, 2), value=1.0)
    dx, dy = torch.randint(0, 5, (2,), generator=gen).tolist()
    x = pad[:, :, dy : dy + 32, dx : dx + 32]
    blur = torch.rand(b, 1, 1, 1, generator=gen) < 0.5
    x = torch.where(blur, F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1), x)
    x = x + torch.randn(x.shape, generator=gen) * torch.rand(b, 1, 1, 1, generator=gen) * 0.15
    return x.clamp(-1, 1)


def train_classifier(
    data: np.lib.npyio.NpzFile, n_groups: int, cache: Path, epochs: int = 20
) -> tuple[GroupCNN, float]:
    """Train (or load from `cache`) on real images; returns the model and its accuracy on unseen emoji."""
    torch.manual_seed(0)
    model = GroupCNN(n_groups)
    meta_path = cache.with_suffix(".json")
    if cache.exists() and meta_path.exists():
        model.load_state_dict(load_file(cache))
        return model.eval(), json.loads(meta_path.read_text())["val_accuracy"]
    images = torch.from_numpy(data["images"]).permute(0, 3, 1, 2).float() / 127.5 - 1
    groups = torch.from_numpy(data["group"])
    emoji = data["emoji"]
    rng = np.random.default_rng(0)
    ids = np.unique(emoji[~data["held_out"]])
    val_ids = set(rng.choice(ids, size=len(ids) // 10, replace=False).tolist())
    is_val = np.array([e in val_ids for e in emoji])
    tr = torch.from_numpy(~is_val & ~data["held_out"])
    va = torch.from_numpy(is_val)
    xtr, ytr, xva, yva = images[tr], groups[tr], images[va], groups[va]
    opt = torch.optim.AdamW(model.parameters(), 2e-3, weight_decay=1e-3)
    steps = epochs * (len(xtr) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(perm) - 63, 64):
            j = perm[i : i + 64]
            loss = F.cross_entropy(model(augment(xtr[j], gen)), ytr[j], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(xva).argmax(1) == yva).float().mean())
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), cache)
    meta_path.write_text(json.dumps({"val_accuracy": acc, "n_train": len(xtr), "n_val": len(xva)}))
    return model, acc


def generate(pipe: GenStudioTinyPipeline, prompts: list[str], seeds: list[int], steps: int, cfg: float) -> torch.Tensor:
    """[len(prompts) * len(seeds), 3, 32, 32] in [-1, 1]; image k*len(seeds)+s is prompt k, seed s."""
    gens = [torch.Generator().manual_seed(s) for _ in prompts for s in seeds]
    out = pipe(
        [p for p in prompts for _ in seeds],
        num_inference_steps=steps,
        guidance_scale=cfg,
        generator=gens,
        output_type="pt",
    )
    return out.images


def grid(images: torch.Tensor, cols: int, scale: int = 2) -> Image.Image:
    arr = ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    rows = int(np.ceil(len(arr) / cols))
    h, w = arr.shape[1:3]
    canvas = np.full((rows * (h + 2), cols * (w + 2), 3), 255, np.uint8)
    for i, a in enumerate(arr):
        r, c = divmod(i, cols)
        canvas[r * (h + 2) + 1 : r * (h + 2) + 1 + h, c * (w + 2) + 1 : c * (w + 2) + 1 + w] = a
    im = Image.fromarray(canvas)
    return im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)


def evaluate_model(
    folder: Path, clf: GroupCNN, prompts: dict, groups: list[str], seeds: list[int], steps: int, cfg: float
) -> tuple[dict, torch.Tensor]:
    from diffusers import DDIMScheduler

    pipe = GenStudioTinyPipeline.from_folder(folder)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    result: dict = {"model": str(folder), "seeds": seeds, "steps": steps, "guidance": cfg, "scheduler": "DDIM"}
    shown = []
    for split in ("held_out", "train"):
        items = prompts[split]
        imgs = generate(pipe, [p["prompt"] for p in items], seeds, steps, cfg)
        shown.append(imgs)
        with torch.no_grad():
            pred = clf(imgs).argmax(1).view(len(items), len(seeds))
        want = torch.tensor([groups.index(p["group"]) for p in items])[:, None]
        hits = pred == want
        result[split] = {
            "accuracy": float(hits.float().mean()),
            "per_prompt": {p["prompt"]: float(h.float().mean()) for p, h in zip(items, hits, strict=True)},
        }
    return result, torch.cat(shown)


def noise_baseline(clf: GroupCNN, prompts: dict, groups: list[str], n_seeds: int) -> float:
    gen = torch.Generator().manual_seed(0)
    want = torch.tensor([groups.index(p["group"]) for p in prompts["held_out"]]).repeat_interleave(n_seeds)
    noise = torch.rand(len(want), 3, 32, 32, generator=gen) * 2 - 1
    with torch.no_grad():
        return float((clf(noise).argmax(1) == want).float().mean())


def real_reference(
    clf: GroupCNN, data: np.lib.npyio.NpzFile, meta: list[dict], items: list[dict], names: list[str]
) -> float:
    """Accuracy on the real images (both vendors) of the prompts' emoji: the ceiling for generated ones."""
    index = {m["label"]: i for i, m in enumerate(meta)}
    groups = [m["group"] for m in meta]
    sel = np.isin(data["emoji"], [index[p["label"]] for p in items])
    x = torch.from_numpy(data["images"][sel]).permute(0, 3, 1, 2).float() / 127.5 - 1
    want = [groups[e] for e in data["emoji"][sel]]
    with torch.no_grad():
        pred = clf(x).argmax(1).tolist()
    return float(np.mean([names[p] == w for p, w in zip(pred, want, strict=True)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="evaluate every export-* folder of this run (cached per export)")
    ap.add_argument("--model", type=Path, action="append", default=[], help="evaluate this diffusers folder")
    ap.add_argument("--data", type=Path, default=HERE / "data")
    ap.add_argument("--classifier", type=Path, default=HERE / "runs" / "group-classifier.safetensors")
    ap.add_argument("--seeds", type=int, default=4, help="images per prompt")
    ap.add_argument("--first-seed", type=int, default=0, help="fresh seeds give an unbiased re-check of a pick")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--out", type=Path, default=None, help="result folder (default RUN/eval or runs/eval-models)")
    ap.add_argument("--grid", type=Path, default=None, help="also write the best model's sample grid here")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    data = np.load(args.data / "emoji32.npz")
    prompts = json.loads((args.data / "prompts.json").read_text())
    groups = prompts["groups"]
    t0 = time.time()
    clf, clf_acc = train_classifier(data, len(groups), args.classifier)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    baseline = noise_baseline(clf, prompts, groups, args.seeds)
    meta = json.loads((args.data / "emoji.json").read_text())
    real = {split: real_reference(clf, data, meta, prompts[split], groups) for split in ("held_out", "train")}
    print(f"classifier accuracy on unseen real emoji {clf_acc:.3f} ({time.time() - t0:.0f} s); noise {baseline:.3f}")
    print(f"real images of the prompts' emoji: held-out {real['held_out']:.3f} train {real['train']:.3f}")

    folders = list(args.model)
    if args.run:
        folders += sorted(args.run.glob("export-*"))
    out = args.out or ((args.run / "eval") if args.run else HERE / "runs" / "eval-models")
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for folder in folders:
        tag = folder.name if args.run and folder.parent == args.run else folder.name + "-model"
        path = out / f"{tag}.json"
        if path.exists() and folder.parent == args.run:
            results.append(json.loads(path.read_text()))
            continue
        t0 = time.time()
        res, imgs = evaluate_model(folder, clf, prompts, groups, seeds, args.steps, args.guidance)
        res.update(classifier_accuracy=clf_acc, noise_baseline=baseline, real_images=real, tag=tag)
        path.write_text(json.dumps(res, indent=1))
        grid(imgs, cols=2 * args.seeds).save(out / f"{tag}.png")
        results.append(res)
        print(
            f"{tag}: held-out {res['held_out']['accuracy']:.3f}  train {res['train']['accuracy']:.3f}"
            f"  ({time.time() - t0:.0f} s)",
            flush=True,
        )
    if not results:
        return
    best = max(results, key=lambda r: (r["held_out"]["accuracy"], r["train"]["accuracy"]))
    summary = {
        "classifier_accuracy": clf_acc,
        "noise_baseline": baseline,
        "real_images": real,
        "best": best["tag"],
        "table": [
            {"tag": r["tag"], "held_out": r["held_out"]["accuracy"], "train": r["train"]["accuracy"]} for r in results
        ],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"best {best['tag']}: held-out {best['held_out']['accuracy']:.3f} train {best['train']['accuracy']:.3f}")
    if args.grid:
        args.grid.parent.mkdir(parents=True, exist_ok=True)
        Image.open(out / f"{best['tag']}.png").save(args.grid)


if __name__ == "__main__":
    main()
