"""Image studio benchmarks, side by side in one run (medians and ratios, never from unit tests).

1. API overhead: one image through the REST API of a real server process vs the same studio code called
   directly, same model and settings, runs interleaved.
2. Built-in model: seconds per image (pipeline alone, and with PNG + watermark + C2PA), images/s at batch 8.
3. Status endpoint p50/p99 with 50 concurrent clients while a job runs.

    .venv/bin/python bench/run_image_bench.py [--model builtin:emoji-tiny] [--repeats 7] [--out bench/results]
    .venv/bin/python bench/run_image_bench.py --device cuda     # real-size SD 1.5 / SDXL, GPU vs CPU (gpu_bench.py)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch

from genstudio import runtime
from genstudio.config import Settings
from genstudio.image.backend import generate
from genstudio.image.models import ModelRegistry
from genstudio.image.params import ImageRequest
from genstudio.image.studio import ImageStudio, resolve


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, model: str, threads: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "GENSTUDIO_DATA_DIR": str(data_dir),
        "GENSTUDIO_DEFAULT_IMAGE_MODEL": model,
        "GENSTUDIO_TORCH_THREADS": str(threads),
        "GENSTUDIO_MAX_QUEUED_JOBS": "64",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "genstudio.cli", "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


def api_image(client: httpx.Client, body: dict) -> float:
    t0 = time.perf_counter()
    job_id = client.post("/api/images", json=body).json()["job_id"]
    job: dict = {}
    # Wait the way the web UI does: on the job's Server-Sent Events stream.
    with client.stream("GET", f"/api/jobs/{job_id}/events") as r:
        event = None
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "end":
                job = json.loads(line.split(":", 1)[1])
                break
    assert job.get("status") == "succeeded", job
    client.get(f"/api/assets/{job['assets'][0]}").raise_for_status()
    return time.perf_counter() - t0


def wrk_load(url: str, clients: int, seconds: int, extra: list[str] | None = None) -> dict:
    """wrk (Debian package) drives 50 connections from C, so the client does not starve the server."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--latency", *(extra or []), url],
        capture_output=True, text=True, check=True,
    ).stdout

    def ms(token: str) -> float:
        for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3), ("m", 6e4)):
            if token.endswith(unit):
                return float(token[: -len(unit)]) * scale
        raise ValueError(token)

    dist = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "75%", "90%", "99%"):
            dist[parts[0]] = ms(parts[1])
        if line.startswith("Requests/sec:"):
            dist["rps"] = float(line.split()[1])
        if "requests in" in line:
            dist["requests"] = int(line.split()[0])
        if "Non-2xx" in line:
            dist["non_2xx"] = int(line.split()[-1])
        if line.strip().startswith("Socket errors:"):  # connect/read/write/timeout counts
            dist["socket_errors"] = sum(int(t.rstrip(",")) for t in line.split()[3::2])
    return {
        "tool": "wrk",
        "clients": clients,
        "seconds": seconds,
        "p50_ms": dist["50%"],
        "p99_ms": dist["99%"],
        "requests_per_s": dist.get("rps"),
        "requests": dist.get("requests"),
        "non_2xx": dist.get("non_2xx", 0),
        "socket_errors": dist.get("socket_errors", 0),
    }


async def status_load(base: str, job_id: str, clients: int, per_client: int) -> list[float]:
    lat: list[float] = []
    async with httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=clients)) as c:

        async def one() -> None:
            for _ in range(per_client):
                t0 = time.perf_counter()
                r = await c.get(f"/api/jobs/{job_id}")
                r.raise_for_status()
                lat.append(time.perf_counter() - t0)

        await asyncio.gather(*(one() for _ in range(clients)))
    return lat


class _Done(Exception):
    """--overhead-only: leave after the API overhead part."""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="model id (default: the built-in model)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=max(1, torch.get_num_threads()))
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--request", default="{}", help='JSON merged into the request, e.g. \'{"steps": 4}\'')
    ap.add_argument("--overhead-only", action="store_true", help="only the API overhead (1.)")
    ap.add_argument("--device", default=None,
                    help="cuda | cuda:N | mps | cpu: the real-size GPU bench (bench/gpu_bench.py) instead")
    ap.add_argument("--models", default="sd15,sdxl", help="--device: sd15,sdxl")
    ap.add_argument("--steps", type=int, default=20, help="--device: steps on the device")
    ap.add_argument("--cpu-steps", type=int, default=2, help="--device: steps of the CPU comparison")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.device:
        from gpu_bench import main as gpu_main

        gpu_main(args.device, args.models.split(","), args.steps, args.cpu_steps, min(args.repeats, 3), Path(args.out))
        return

    data = Path(tempfile.mkdtemp(prefix="genstudio-bench-"))
    settings = Settings(data_dir=data)
    settings.ensure_dirs()
    registry = ModelRegistry(settings)
    model = args.model or settings.default_image_model
    if model == "sd15-random":  # a full-size SD 1.5 (real architecture, random weights), built offline
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from genstudio.image.single_file import config_folder
        from ldm_layout import random_pipeline

        folder = data / "sd15-random"
        random_pipeline("sd1", config_folder("sd1", data / "cfg")).save_pretrained(folder, safe_serialization=True)
        model = str(folder)
    if Path(model).exists():  # a folder or file: register it in the bench's own data dir
        model = registry.add(model, name="bench-model").id
    ctx = runtime.context(settings)
    studio = ImageStudio(ctx)
    body = {"prompt": "a red heart", "seed": 1, "model": model, **json.loads(args.request)}
    params = resolve(ImageRequest(**body), registry, settings)
    results: dict = {
        "model": model,
        "params": params.model_dump(),
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "repeats": args.repeats,
    }

    # 1. API overhead, interleaved with the direct call.
    server, base = start_server(data, model, args.threads)
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            ctx.stage(studio.run(params))
            api_image(client, body)  # warm both: model load, first-call allocations
            direct, api = [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                ctx.stage(studio.run(params))
                direct.append(time.perf_counter() - t0)
                api.append(api_image(client, body))
            results["api_overhead"] = {
                "direct_median_s": median(direct),
                "api_median_s": median(api),
                "ratio": median(api) / median(direct),
                "direct_all_s": direct,
                "api_all_s": api,
            }

            if args.overhead_only:
                raise _Done
            # 3. Status endpoint under 50 concurrent clients while a long job runs.
            long_body = {**body, "batch": 8, "steps": 100}
            job_id = client.post("/api/images", json=long_body).json()["job_id"]
            while client.get(f"/api/jobs/{job_id}").json()["status"] != "running":
                time.sleep(0.01)
            if shutil.which("wrk"):
                load = wrk_load(f"{base}/api/jobs/{job_id}", clients=50, seconds=10)
            else:
                lat = asyncio.run(status_load(base, job_id, clients=50, per_client=20))
                load = {
                    "tool": "httpx",
                    "clients": 50,
                    "requests": len(lat),
                    "p50_ms": pct(lat, 50) * 1e3,
                    "p99_ms": pct(lat, 99) * 1e3,
                }
            load["job_still_running_after"] = client.get(f"/api/jobs/{job_id}").json()["status"] == "running"
            results["status_under_load"] = load
            client.post(f"/api/jobs/{job_id}/cancel")
    except _Done:
        pass
    finally:
        server.terminate()
        server.wait(30)
    if args.overhead_only:
        ao = results["api_overhead"]
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"api-overhead-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(results, indent=2))
        print(f"API {ao['api_median_s']:.3f} s vs direct {ao['direct_median_s']:.3f} s: {ao['ratio']:.3f}x")
        return

    # 2. Built-in model speed: pipeline alone and the full studio (PNG + watermark + C2PA).
    pipe = studio.cache.get(registry.get(model))
    style_free = dict(prompt=params.prompt, negative_prompt="")
    one, full, b8 = [], [], []
    p8 = params.model_copy(update={"batch": 8})
    generate(pipe, p8, **style_free)
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        generate(pipe, params, **style_free)
        one.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ctx.stage(studio.run(params))
        full.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        generate(pipe, p8, **style_free)
        b8.append(time.perf_counter() - t0)
    results["model_speed"] = {
        "s_per_image_pipeline": median(one),
        "s_per_image_with_provenance": median(full),
        "batch8_s": median(b8),
        "batch8_images_per_s": 8 / median(b8),
    }

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"image-{model.replace(':', '-')}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    (out / name).write_text(json.dumps(results, indent=2))
    ao, ms, st = results["api_overhead"], results["model_speed"], results["status_under_load"]
    print(json.dumps({k: v for k, v in results.items() if k not in ("api_overhead",)}, indent=2, default=str))
    print(f"API overhead: direct {ao['direct_median_s']:.3f}s, API {ao['api_median_s']:.3f}s, ratio {ao['ratio']:.3f}")
    print(
        f"Model: {ms['s_per_image_pipeline']:.3f}s/image (pipeline), {ms['s_per_image_with_provenance']:.3f}s with "
        f"provenance; batch 8: {ms['batch8_images_per_s']:.2f} images/s"
    )
    print(
        f"Status ({st['tool']}, 50 clients): p50 {st['p50_ms']:.1f} ms, p99 {st['p99_ms']:.1f} ms, "
        f"{st['requests']} requests, job still running: {st['job_still_running_after']}"
    )
    print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
