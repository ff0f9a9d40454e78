"""A real server process killed with SIGKILL mid-job comes back with nothing lost or half-written."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from services import free_port, genstudio, wait_http


def start_server(data: Path, port: int) -> subprocess.Popen[bytes]:
    env = {"GENSTUDIO_DEFAULT_IMAGE_MODEL": "tiny-sd", "GENSTUDIO_MAX_QUEUED_JOBS": "20", "HF_HUB_OFFLINE": "1"}
    proc = genstudio("serve", "--port", str(port), "--data-dir", str(data), "--log-level", "warning", env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}/api/health")
    except AssertionError:
        proc.kill()
        raise
    return proc


def test_kill9_with_jobs_queued_and_running(tmp_path: Path, tiny_sd_dir: Path) -> None:
    data = tmp_path / "data"
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
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(data, port)
    try:
        body = {"width": 64, "height": 64, "steps": 12, "sampler": "ddim", "guidance": 5.0}
        ids = [
            httpx.post(f"{base}/api/images", json={"prompt": f"job {i}", "seed": i, **body}).json()["job_id"]
            for i in range(10)
        ]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # Kill as soon as some job is mid-run (on a fast machine the first may already be done).
            statuses = [httpx.get(f"{base}/api/jobs/{i}").json()["status"] for i in ids]
            if "running" in statuses and "queued" in statuses:
                break
            time.sleep(0.02)
        else:
            raise AssertionError("no job was caught running with others queued")
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(10)

    server = start_server(data, port)
    try:
        deadline = time.monotonic() + 240
        jobs: list[dict] = []
        while time.monotonic() < deadline:
            jobs = [httpx.get(f"{base}/api/jobs/{i}").json() for i in ids]
            if all(j["status"] in ("succeeded", "failed", "cancelled") for j in jobs):
                break
            time.sleep(0.3)
        assert [j["status"] for j in jobs] == ["succeeded"] * 10, jobs
        assert all(len(j["assets"]) == 1 for j in jobs)
        gallery = httpx.get(f"{base}/api/gallery?limit=50").json()["items"]
        assert sorted(a["id"] for a in gallery) == sorted(j["assets"][0] for j in jobs)
    finally:
        server.terminate()
        server.wait(20)
    files = sorted(p.name for p in (data / "assets").rglob("*") if p.is_file())
    assert len(files) == 10 and not list((data / "tmp").glob("*.part"))
