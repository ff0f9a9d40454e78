"""Distributed-mode benchmarks, side by side in one run (Redis from Debian's package, real processes).

1. Throughput of small image jobs with 1 vs 2 workers (ratio; on 2 cores the ceiling is about 2x).
2. Status endpoint p50/p99 with 50 concurrent clients (wrk) while jobs run: local queue vs distributed.
3. Time for a job to be picked up again after its worker is killed (kill -9).

    .venv/bin/python bench/run_distributed_bench.py [--jobs 16] [--steps 10] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_image_bench import wrk_load  # noqa: E402

from services import free_port, genstudio, redis_server, wait_http  # noqa: E402


def wait_all(base: str, ids: list[str], timeout: float = 600) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = [httpx.get(f"{base}/api/jobs/{i}").json() for i in ids]
        if all(j["status"] in ("succeeded", "failed", "cancelled") for j in jobs):
            return jobs
        time.sleep(0.1)
    raise RuntimeError("jobs did not finish")


class Cluster:
    def __init__(self, redis_url: str | None, workers: int, root: Path) -> None:
        self.data = root / f"data-{workers}-{'dist' if redis_url else 'local'}"
        self.env = {
            "GENSTUDIO_DATA_DIR": str(self.data),
            "GENSTUDIO_TORCH_THREADS": "1",
            "GENSTUDIO_MAX_QUEUED_JOBS": "200",
            "GENSTUDIO_HEARTBEAT_TIMEOUT_S": "3",
        }
        if redis_url:
            self.env["GENSTUDIO_BROKER_URL"] = redis_url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = genstudio("serve", "--port", str(self.port), "--log-level", "warning", env=self.env)
        self.workers = [
            genstudio("worker", "--queues", "image", "--log-level", "warning", env=self.env)
            for _ in range(workers if redis_url else 0)
        ]
        wait_http(f"{self.base}/api/health")

    def warm(self, body: dict) -> None:
        ids = [self.submit({**body, "steps": 1}) for _ in range(max(1, len(self.workers)))]
        wait_all(self.base, ids)

    def submit(self, body: dict) -> str:
        return httpx.post(f"{self.base}/api/images", json=body).json()["job_id"]

    def close(self) -> None:
        for p in [self.server, *self.workers]:
            if p.poll() is None:
                p.terminate()
        for p in [self.server, *self.workers]:
            p.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="genstudio-dbench-"))
    body = {"prompt": "a red heart", "steps": args.steps, "seed": 1}
    results: dict = {"jobs": args.jobs, "steps": args.steps, "cores": os.cpu_count(), "model": "builtin:emoji-tiny"}
    with redis_server() as redis_url:
        if redis_url is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        # 1. Throughput, 1 vs 2 workers.
        for n in (1, 2):
            c = Cluster(redis_url, n, root)
            try:
                c.warm(body)
                t0 = time.perf_counter()
                ids = [c.submit({**body, "seed": i}) for i in range(args.jobs)]
                jobs = wait_all(c.base, ids)
                wall = time.perf_counter() - t0
                assert all(j["status"] == "succeeded" for j in jobs), jobs
                results[f"workers_{n}"] = {
                    "wall_s": wall,
                    "jobs_per_s": args.jobs / wall,
                    "workers_used": len({j["worker"] for j in jobs}),
                }
                if n == 2:
                    # 3. Pick-up time: kill the worker running a long job.
                    job_id = c.submit({**body, "steps": 100, "batch": 8})
                    while (job := httpx.get(f"{c.base}/api/jobs/{job_id}").json())["status"] != "running":
                        time.sleep(0.02)
                    os.kill(int(job["worker"].split(":")[1]), signal.SIGKILL)
                    killed = time.perf_counter()
                    while True:
                        job = httpx.get(f"{c.base}/api/jobs/{job_id}").json()
                        if job["status"] == "running" and job["attempts"] == 2:
                            break
                        time.sleep(0.02)
                    results["pickup_after_kill_s"] = time.perf_counter() - killed
                    httpx.post(f"{c.base}/api/jobs/{job_id}/cancel")
            finally:
                c.close()
        results["throughput_ratio_2_vs_1"] = results["workers_2"]["jobs_per_s"] / results["workers_1"]["jobs_per_s"]

        # 2. Status endpoint under 50 clients while jobs run: embedded local queue vs distributed (1 worker).
        for mode, url in (("local", None), ("distributed", redis_url)):
            c = Cluster(url, 1, root)
            try:
                c.warm(body)
                ids = [c.submit({**body, "steps": 100, "batch": 8}) for _ in range(3)]
                while httpx.get(f"{c.base}/api/jobs/{ids[0]}").json()["status"] != "running":
                    time.sleep(0.02)
                results[f"status_{mode}"] = wrk_load(f"{c.base}/api/jobs/{ids[0]}", clients=50, seconds=10)
                for i in ids:
                    httpx.post(f"{c.base}/api/jobs/{i}/cancel")
            finally:
                c.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"distributed-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
