"""CPU speed of real-size Stable Diffusion pipelines: plain diffusers float32 against the studio's options,
side by side in one run, with the pixel difference each option makes.

Pipelines are built offline from the shipped family configs (genstudio/image/single_file.py) with random
weights, at full size:
  - SD-Turbo size (SD 2.1 architecture): 512x512, 1 step, guidance 0
  - SD 1.5 size: 512x512, 4 steps, guidance 7 (two UNet passes a step)
Variants: float32 (plain diffusers: the baseline), float32 channels-last, bfloat16, bfloat16 channels-last.
Each variant: one warm-up run, then --repeats timed runs; the median seconds per image and the ratio to
the baseline. Pixel difference: mean absolute difference (0-255) and PSNR against the baseline image of
the same seed. Results: bench/results/cpu_speed.json.

    .venv/bin/python bench/run_cpu_speed_bench.py [--repeats 3] [--models turbo,sd15] [--threads 2]
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

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the random-pipeline builder

CASES = {
    "turbo": {"family": "sd2-base", "steps": 1, "guidance": 0.0, "label": "SD-Turbo size (SD 2.1 arch), 1 step"},
    "sd15": {"family": "sd1", "steps": 4, "guidance": 7.0, "label": "SD 1.5 size, 4 steps, guidance 7"},
}


def build(family: str) -> Any:
    from genstudio.image.single_file import config_folder
    from ldm_layout import random_pipeline

    return random_pipeline(family, config_folder(family, Path(tempfile.mkdtemp(prefix="genstudio-bench-cfg-"))),
                           euler=True)


def variant(pipe: Any, dtype: torch.dtype, channels_last: bool) -> Any:
    pipe = pipe.to(dtype=dtype)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    pipe.unet.to(memory_format=fmt)
    pipe.vae.to(memory_format=fmt)
    return pipe


def run(pipe: Any, case: dict[str, Any]) -> tuple[float, np.ndarray]:
    g = torch.Generator("cpu").manual_seed(42)
    t0 = time.perf_counter()
    with torch.inference_mode():
        image = pipe("a lighthouse on a cliff at dawn", num_inference_steps=case["steps"],
                     guidance_scale=case["guidance"], width=512, height=512, generator=g, output_type="np").images[0]
    return time.perf_counter() - t0, (np.clip(image, 0, 1) * 255).astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default="turbo,sd15")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = [("float32", torch.float32, False), ("float32 channels-last", torch.float32, True),
                ("bfloat16", torch.bfloat16, False), ("bfloat16 channels-last", torch.bfloat16, True)]
    results: dict[str, Any] = {"threads": torch.get_num_threads(), "torch": torch.__version__, "cases": {}}
    for key in args.models.split(","):
        case = CASES[key]
        pipe = build(case["family"])
        rows: dict[str, Any] = {}
        baseline_image = None
        for name, dtype, cl in variants:
            pipe = variant(pipe, dtype, cl)
            run(pipe, case)  # warm-up (oneDNN picks its kernels on the first call)
            times, image = [], None
            for _ in range(args.repeats):
                t, image = run(pipe, case)
                times.append(t)
            if baseline_image is None:
                baseline_image = image
            rows[name] = {
                "median_s": statistics.median(times),
                "times_s": times,
                "mean_abs_diff_0_255": float(np.abs(image - baseline_image).mean()),
                "psnr_db": psnr(image, baseline_image),
            }
            print(f"{case['label']:38s} {name:24s} {rows[name]['median_s']:7.2f} s  "
                  f"diff {rows[name]['mean_abs_diff_0_255']:.2f}  PSNR {rows[name]['psnr_db']:.1f} dB", flush=True)
        base = rows["float32"]["median_s"]
        for row in rows.values():
            row["speedup_vs_float32"] = base / row["median_s"]
        results["cases"][key] = {"label": case["label"], "variants": rows}
        del pipe
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cpu_speed.json").write_text(json.dumps(results, indent=2))
    for c in results["cases"].values():
        best = max(c["variants"].items(), key=lambda kv: kv[1]["speedup_vs_float32"])
        print(f"{c['label']}: fastest {best[0]} = {best[1]['speedup_vs_float32']:.2f}x float32")


if __name__ == "__main__":
    main()
