"""What a LoRA and a ControlNet unit cost per sampling step, against plain sampling, on the SD 1.5-size
pipeline (real architecture, random weights, built offline), through the studio's own `generate`.

Variants, side by side in one run on one pipeline: plain; one LoRA (rank 16 on every attention projection,
kohya-style coverage of the UNet, weight 0.8); one ControlNet unit (a full-size SD 1.5 ControlNet, canny
preprocessor); both. Each variant: one warm-up image, then --repeats images; per image, the seconds between
step callbacks (the step cost, excluding text encoding and VAE decoding) and the whole image. Reported: the
median step time and its ratio to plain. Results: bench/results/addon_cost.json.

    .venv/bin/python bench/run_addon_cost.py [--repeats 3] [--steps 4] [--size 512] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the random-pipeline and toy add-on builders


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rank", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from diffusers import ControlNetModel

    from genstudio.image.addons import Addons
    from genstudio.image.backend import generate
    from genstudio.image.models import ModelEntry
    from genstudio.image.params import ControlUnit, ImageParams
    from genstudio.image.single_file import config_folder
    from ldm_layout import random_pipeline
    from toy_addons import save_peft_lora

    work = Path(tempfile.mkdtemp(prefix="genstudio-bench-addons-"))
    pipe = random_pipeline("sd1", config_folder("sd1", work / "cfg"))
    pipe.set_progress_bar_config(disable=True)
    pipe._genstudio_base_scheduler_config = dict(pipe.scheduler.config)
    pipe._genstudio_family = "sd1"
    lora_file = save_peft_lora(pipe, work / "lora.safetensors", seed=0, rank=args.rank)
    lora = ModelEntry(id="bench-lora", format="single_file", source=str(lora_file), kind="lora")
    cn = ControlNetModel.from_unet(pipe.unet).eval()
    control = Image.new("RGB", (args.size, args.size), 0)
    control.paste((255, 255, 255), (args.size // 4, args.size // 4, 3 * args.size // 4, 3 * args.size // 4))
    unit = ControlUnit(model="bench-cn", image="x", preprocessor="canny", weight=1.0)
    variants = {
        "plain": Addons(),
        "lora": Addons(loras=[(lora, 0.8)]),
        "controlnet": Addons(controls=[(cn, control, unit)]),
        "lora+controlnet": Addons(loras=[(lora, 0.8)], controls=[(cn, control, unit)]),
    }
    params = ImageParams(prompt="a lighthouse on a cliff at dawn", negative_prompt="", style=None, model="sd15",
                         seed=1, steps=args.steps, guidance=7.0, width=args.size, height=args.size, batch=1,
                         sampler="euler", tile=False)
    results: dict[str, Any] = {}
    for rnd in range(args.repeats + 1):  # interleaved rounds: drift on the machine hits every variant alike
        for name, addons in variants.items():
            stamps: list[float] = []
            t0 = time.perf_counter()
            generate(pipe, params, prompt=params.prompt, negative_prompt="", addons=addons,
                     on_step=lambda _d, _n, s=stamps: s.append(time.perf_counter()))
            total = time.perf_counter() - t0
            if rnd == 0:
                continue  # warm-up (first LoRA load, first ControlNet pipeline)
            steps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
            r = results.setdefault(name, {"step_s": [], "image_s": []})
            r["step_s"] += steps
            r["image_s"].append(total)
            print(f"round {rnd} {name:16} step {statistics.median(steps):.3f} s  image {total:.2f} s", flush=True)
    base = statistics.median(results["plain"]["step_s"])
    summary = {}
    for name, r in results.items():
        step = statistics.median(r["step_s"])
        summary[name] = {"step_median_s": round(step, 4), "step_ratio": round(step / base, 3),
                         "image_median_s": round(statistics.median(r["image_s"]), 3), "steps_timed": len(r["step_s"])}
    out = {"pipeline": "SD 1.5 size (random weights), float32, CPU", "size": args.size, "steps": args.steps,
           "guidance": 7.0, "threads": args.threads, "lora_rank": args.rank, "repeats": args.repeats,
           "torch": torch.__version__, "results": summary}
    dest = ROOT / "bench" / "results" / "addon_cost.json"
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
