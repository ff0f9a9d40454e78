"""Distributed mode on real Redis and real worker processes: kill -9 a worker mid-job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from postgres import postgres_server
from services import free_port, genstudio, redis_server, wait_http

BODY = {"width": 64, "height": 64, "sampler": "ddim", "guidance": 5.0}


@pytest.fixture
def cluster(tmp_path: Path, tiny_sd_dir: Path) -> Iterator[dict]:
    with redis_server() as redis_url, postgres_server() as pg_url:
        if redis_url is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        data = tmp_path / "shared"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "genstudio.cli",
                "models",
                "add",
                str(tiny_sd_dir),
                "--name",
                "tiny-sd",
                "--data-dir",
                str(data),
            ],
            check=True,
            capture_output=True,
        )
        env = {
            "GENSTUDIO_BROKER_URL": redis_url,
            "GENSTUDIO_DATA_DIR": str(data),
            "HF_HUB_OFFLINE": "1",
            "GENSTUDIO_DEFAULT_IMAGE_MODEL": "tiny-sd",
            "GENSTUDIO_HEARTBEAT_TIMEOUT_S": "3",
            "GENSTUDIO_TORCH_THREADS": "1",
        }
        if pg_url:  # the shared database of a real deployment; SQLite on one machine otherwise
            env["GENSTUDIO_DATABASE_URL"] = pg_url
        port = free_port()
        server = genstudio("serve", "--port", str(port), "--log-level", "warning", env=env, log=tmp_path / "server.log")
        workers = {
            i: genstudio(
                "worker", "--queues", "image,music", "--log-level", "warning", env=env, log=tmp_path / f"worker{i}.log"
            )
            for i in range(2)
        }
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{base}/api/health")
            # Both workers are ready once each has run a job (model loaded): warm up until two have.
            ready: set[str] = set()
            deadline = time.monotonic() + 180
            try:
                while len(ready) < 2 and time.monotonic() < deadline:
                    warm = [
                        httpx.post(f"{base}/api/images", json={"prompt": "warm", **BODY, "steps": 20}).json()["job_id"]
                        for _ in range(2)
                    ]
                    ready |= {wait_status(base, job_id, 180)["worker"] for job_id in warm}
                assert len(ready) == 2, "both workers should have taken a job"
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{_log_tails(tmp_path, workers)}") from None
            yield {"base": base, "workers": workers, "data": data, "tmp": tmp_path}
        finally:
            for p in [server, *workers.values()]:
                if p.poll() is None:
                    p.terminate()
            for p in [server, *workers.values()]:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()


def _log_tails(tmp_path: Path, workers: dict) -> str:
    """What the processes said, for a failure message (a worker that died at start says why here)."""
    parts = []
    for name in ["server", *(f"worker{i}" for i in workers)]:
        log = tmp_path / f"{name}.log"
        text = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
        alive = "" if name == "server" else f" (exit code {workers[int(name[-1])].poll()})"
        parts.append(f"--- {name}{alive} ---\n{text}")
    return "\n".join(parts)


def wait_status(
    base: str, job_id: str, timeout: float = 120, statuses: tuple[str, ...] = ("succeeded", "failed", "cancelled")
) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{base}/api/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} stuck: {job}")


def test_kill9_worker_mid_job_completes_on_the_other(cluster: dict) -> None:
    base = cluster["base"]
    job_id = httpx.post(f"{base}/api/images", json={"prompt": "survivor", "seed": 3, **BODY, "steps": 60}).json()[
        "job_id"
    ]
    job = wait_status(base, job_id, 60, ("running",))
    deadline = time.monotonic() + 30
    while job["progress"] < 0.1 and time.monotonic() < deadline:
        time.sleep(0.05)
        job = httpx.get(f"{base}/api/jobs/{job_id}").json()
    victim_pid = int(job["worker"].split(":")[1])
    assert victim_pid in [p.pid for p in cluster["workers"].values()]
    os.kill(victim_pid, signal.SIGKILL)
    killed_at = time.monotonic()

    done = wait_status(base, job_id, 120)
    assert done["status"] == "succeeded", done
    assert int(done["worker"].split(":")[1]) != victim_pid
    assert done["attempts"] == 2 and len(done["assets"]) == 1
    print(f"picked up again and finished {time.monotonic() - killed_at:.1f}s after the kill")

    gallery = httpx.get(f"{base}/api/gallery?limit=50").json()["items"]
    mine = [a for a in gallery if a["job_id"] == job_id]
    assert [a["id"] for a in mine] == done["assets"]
    files = [p for p in (cluster["data"] / "assets").rglob("*") if p.is_file()]
    assert len(files) == len(gallery)  # no orphan file from the killed attempt
    assert httpx.get(f"{base}/api/assets/{done['assets'][0]}").status_code == 200


def test_progress_cancel_and_both_workers_used(cluster: dict) -> None:
    base = cluster["base"]
    ids = [
        httpx.post(f"{base}/api/images", json={"prompt": f"p{i}", "seed": i, **BODY, "steps": 40, "batch": 2}).json()[
            "job_id"
        ]
        for i in range(4)
    ]
    jobs = [wait_status(base, i) for i in ids]
    assert [j["status"] for j in jobs] == ["succeeded"] * 4
    assert len({j["worker"] for j in jobs}) == 2  # the queue spread the jobs over both workers

    # Batch 8 x 100 steps: long enough on any machine to see progress and cancel mid-run.
    slow = httpx.post(f"{base}/api/images", json={"prompt": "slow", **BODY, "steps": 100, "batch": 8}).json()["job_id"]
    progress: list[float] = []
    previews: list[dict] = []
    event = None
    cancelled = False
    with httpx.stream("GET", f"{base}/api/jobs/{slow}/events", timeout=120) as r:
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            if line.startswith("data:") and event == "preview":  # from the worker process, through Redis
                previews.append(json.loads(line.split(":", 1)[1]))
            if line.startswith("data:") and '"running"' in line:
                progress.append(json.loads(line.split(":", 1)[1])["progress"])
                if len(progress) >= 2 and previews and not cancelled:  # mid-run, with a preview seen
                    httpx.post(f"{base}/api/jobs/{slow}/cancel")
                    cancelled = True
            if line.startswith("event: end"):
                break
    assert len(progress) >= 2 and progress[-1] > 0 and progress == sorted(progress)
    assert previews and all(p["steps"] == 100 and p["image"].startswith("data:image/jpeg;base64,") for p in previews)
    assert wait_status(base, slow)["status"] == "cancelled"


def test_music_jobs_run_on_the_music_queue(cluster: dict) -> None:
    base = cluster["base"]
    r = httpx.post(f"{base}/api/music/sample", json={"n": 3, "bars": 4, "seed": 5, "key": "G major"})
    assert r.status_code == 202, r.text
    job = wait_status(base, r.json()["job_id"], 120)
    assert job["status"] == "succeeded" and len(job["assets"]) == 3 and job["worker"]
    meta = httpx.get(f"{base}/api/assets/{job['assets'][0]}/meta").json()
    assert meta["kind"] == "music" and meta["params"]["key"] == "G major"
    assert httpx.get(f"{base}/api/assets/{job['assets'][0]}").content.startswith(b"MThd")
