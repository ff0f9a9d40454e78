"""Status and gallery under load, while a job runs: 50 concurrent clients (wrk) against a real server.

Side by side in one run, on one server with a gallery of --assets generated results:
  - GET /api/jobs/{id} of the running job, and GET /api/gallery (first page of 50), each
    (a) closed loop: 50 connections sending as fast as the server answers (the worst case), and
    (b) paced: 50 clients each polling every --pace-ms (what 50 open pages do, and more).
p50 / p99 latency, requests per second and errors, into bench/results/status_load.json and stdout.
A job is kept running the whole time (images with the built-in model, in the job process).

    .venv/bin/python bench/run_status_load.py [--seconds 30] [--assets 2000] [--pace-ms 100]

Needs wrk (apt-get install wrk): a Python client on the same two cores would measure itself.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_image_bench import wrk_load  # noqa: E402

from services import free_port, genstudio, wait_http  # noqa: E402

# The built-in model draws at its native size whatever is asked: many steps (GENSTUDIO_MAX_STEPS raised for the
# bench) make a job that outlasts a measurement.
LONG_JOB = {"prompt": "a lighthouse at dusk, load bench", "steps": 1000, "batch": 8}


def seed_gallery(data: Path, n: int) -> None:
    """n generated assets (rows and small files), as a gallery that has been used for a while."""
    from genstudio.config import Settings
    from genstudio.storage.db import Asset, Job, Store, make_engine
    from genstudio.storage.files import FileStore

    s = Settings(data_dir=data)
    s.ensure_dirs()
    store = Store(make_engine(s.db_url))
    files = FileStore(s.assets_dir, data / "tmp")
    with store.session() as db:
        for i in range(0, n, 8):
            job = Job(kind="image", status="succeeded", params={"prompt": f"seeded {i}"}, progress=1.0)
            db.add(job)
            db.flush()
            for pos in range(min(8, n - i)):
                a = Asset(kind="image", studio="image", mime="image/png", path="", job_id=job.id, position=pos,
                          seed=i + pos, params={"prompt": f"seeded {i}", "steps": 20})
                a.path = files.relpath_for(a.id, a.mime)
                size, digest = files.write_atomic(a.path, b"\x89PNG seeded " + a.id.encode())
                a.size, a.sha256 = size, digest
                db.add(a)
        db.commit()


def paced(url: str, clients: int, seconds: int, pace_ms: int, tmp: Path) -> dict:
    """wrk with a Lua delay: each connection waits pace_ms between its requests (latency excludes the wait)."""
    script = tmp / "pace.lua"
    script.write_text(f"function delay()\n  return {pace_ms}\nend\n")
    out = wrk_load(url, clients, seconds, extra=["-s", str(script)])
    return out | {"pace_ms": pace_ms}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--assets", type=int, default=2000)
    ap.add_argument("--pace-ms", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="genstudio-loadbench-"))
    data = root / "data"
    seed_gallery(data, args.assets)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"GENSTUDIO_DATA_DIR": str(data), "GENSTUDIO_MAX_QUEUED_JOBS": "100", "GENSTUDIO_MAX_STEPS": "2000"}
    server = genstudio("serve", "--port", str(port), "--log-level", "warning", env=env, log=root / "server.log")
    results: dict = {}
    try:
        wait_http(f"{base}/api/health")
        http = httpx.Client(base_url=base, timeout=30)
        started: list[str] = []

        def fresh_running_job() -> str:
            """Cancel what runs, start a long job and wait until it runs: it outlasts one measurement."""
            for j in started:
                http.post(f"/api/jobs/{j}/cancel")
            answer = http.post("/api/images", json=LONG_JOB)
            answer.raise_for_status()
            job_id = answer.json()["job_id"]
            started.append(job_id)
            deadline = time.monotonic() + 120
            while (job := http.get(f"/api/jobs/{job_id}").json())["status"] != "running":
                if time.monotonic() > deadline or job["status"] in ("failed", "cancelled", "succeeded"):
                    raise RuntimeError(f"the long job did not start: {job}")
                time.sleep(0.2)
            time.sleep(2)  # past the model load: the job is sampling
            return job_id

        finished = http.post("/api/images", json={**LONG_JOB, "steps": 2, "batch": 1})
        finished_id = finished.json()["job_id"]
        while http.get(f"/api/jobs/{finished_id}").json()["status"] not in ("succeeded", "failed"):
            time.sleep(0.2)
        quiet = {"status_no_job": f"{base}/api/jobs/{finished_id}"}  # the floor: nothing else runs
        results["status_no_job_paced"] = paced(quiet["status_no_job"], args.clients, args.seconds, args.pace_ms, root)
        results["status_no_job_paced"]["job_still_running"] = False
        targets = {
            "status": lambda: f"{base}/api/jobs/{fresh_running_job()}",
            "status_finished_job": lambda: f"{base}/api/jobs/{finished_id}",
            "gallery": lambda: f"{base}/api/gallery?limit=50",
        }
        for name, make_url in targets.items():
            for mode in ("closed", "paced"):
                if name != "status":
                    fresh_running_job()
                url = make_url()
                job_now = started[-1]
                r = (wrk_load(url, args.clients, args.seconds) if mode == "closed"
                     else paced(url, args.clients, args.seconds, args.pace_ms, root))
                r["job_still_running"] = http.get(f"/api/jobs/{job_now}").json()["status"] == "running"
                results[f"{name}_{mode}"] = r
        for j in started:
            http.post(f"/api/jobs/{j}/cancel")
    finally:
        server.terminate()
        server.wait(30)
    cpus = subprocess.check_output(["nproc"]).decode().strip()
    results["machine"] = {"cpus": cpus, "python": platform.python_version()}
    results["settings"] = {"seconds": args.seconds, "clients": args.clients, "assets": args.assets, "job": LONG_JOB}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "status_load.json").write_text(json.dumps(results, indent=2))
    for key, r in results.items():
        if isinstance(r, dict) and "p99_ms" in r:
            errors = r["non_2xx"] + r["socket_errors"]
            rps = r["requests_per_s"] or 0
            print(f"{key:22s} p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  {rps:6.0f} req/s"
                  f"  errors {errors}  job running throughout: {r['job_still_running']}")


if __name__ == "__main__":
    main()
