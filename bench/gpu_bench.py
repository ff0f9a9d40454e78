"""GPU bench, ready to run in one call on a machine with an NVIDIA GPU (or Apple MPS):

    .venv/bin/python bench/run_image_bench.py --device cuda [--models sd15,sdxl] [--steps 20] [--cpu-steps 2]

SD-1.5-size (512x512) and SDXL-size (1024x1024) pipelines, built offline from the shipped family configs
with random weights (the real architectures: no download), placed the way the studio places them
(genstudio.image.device: float16 on the GPU, its memory mode), against the same pipeline on the CPU in the
studio's CPU precision, side by side in one run: UNet iterations per second, seconds per image (text
encoder + steps + VAE decode), peak GPU memory. The CPU runs fewer steps (--cpu-steps): it/s is per step,
seconds per image are extrapolated to --steps and marked so. Results: bench/results/gpu-<device>.json.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the random-pipeline builder

SIZES = {"sd15": ("sd1", 512), "sdxl": ("sdxl", 1024)}


def build(family: str) -> Any:
    from genstudio.image.single_file import config_folder
    from ldm_layout import random_pipeline

    return random_pipeline(family, config_folder(family, Path(tempfile.mkdtemp(prefix="genstudio-bench-cfg-"))),
                           euler=True)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


def measure(pipe: Any, device: str, size: int, steps: int, repeats: int) -> dict[str, Any]:
    step_times: list[float] = []

    def on_step(_p: Any, _i: int, _t: Any, kw: dict[str, Any]) -> dict[str, Any]:
        _sync(device)
        step_times.append(time.perf_counter())
        return kw

    def once() -> float:
        g = torch.Generator("cpu").manual_seed(1)
        _sync(device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            pipe("a lighthouse on a cliff at dawn", num_inference_steps=steps, guidance_scale=7.0, width=size,
                 height=size, generator=g, callback_on_step_end=on_step, output_type="pil")
        _sync(device)
        return time.perf_counter() - t0

    once()  # warm-up: kernels chosen, memory allocated
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    totals, rates = [], []
    for _ in range(repeats):
        step_times.clear()
        totals.append(once())
        gaps = [b - a for a, b in zip(step_times, step_times[1:], strict=False)]
        if gaps:
            rates.append(1.0 / statistics.median(gaps))
    out = {"steps": steps, "seconds_per_image": statistics.median(totals),
           "unet_it_per_s": statistics.median(rates) if rates else None, "times_s": totals}
    if device.startswith("cuda"):
        out["peak_gpu_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def main(device: str, models: list[str], steps: int, cpu_steps: int, repeats: int, out_dir: Path) -> dict[str, Any]:
    from genstudio.image.device import Machine, apply_memory, place

    machine = Machine.probe()
    results: dict[str, Any] = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda,
                               "gpus": machine.cuda, "cpu_bf16": machine.cpu_bf16, "models": {}}
    for key in models:
        family, size = SIZES[key]
        row: dict[str, Any] = {"family": family, "size": size}
        for where, n_steps in ((device, steps), ("cpu", cpu_steps)):
            if where == "cpu" and device == "cpu" and "device" in row:
                break
            pipe = build(family)
            placement = place(where, "auto", "auto", machine, family=family, model_bytes=0)
            pipe.to(dtype=placement.torch_dtype())
            apply_memory(pipe, placement)
            found = measure(pipe, placement.device, size, n_steps, repeats if where != "cpu" else 1)
            found["placement"] = {"device": placement.device, "dtype": placement.dtype, "memory": placement.memory}
            if n_steps != steps and found["unet_it_per_s"]:
                found["seconds_per_image_at_steps_extrapolated"] = (
                    found["seconds_per_image"] + (steps - n_steps) / found["unet_it_per_s"])
            row["device" if where == device else "cpu"] = found
            print(f"{key:5s} {where:7s} {placement.dtype:9s} {found['unet_it_per_s'] or 0:7.2f} it/s  "
                  f"{found['seconds_per_image']:7.2f} s/image ({n_steps} steps)", flush=True)
            del pipe
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        if "cpu" in row and row["device"].get("unet_it_per_s") and row["cpu"].get("unet_it_per_s"):
            row["it_per_s_ratio_device_vs_cpu"] = row["device"]["unet_it_per_s"] / row["cpu"]["unet_it_per_s"]
        results["models"][key] = row
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"gpu-{device.replace(':', '')}.json").write_text(json.dumps(results, indent=2))
    return results
