"""Helpers shared by API tests (a module of its own: `conftest` names clash between test folders)."""

from __future__ import annotations

import time


def wait_job(client, job_id: str, timeout: float = 60.0) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s")


SMALL = {"width": 64, "height": 64, "steps": 2, "guidance": 5.0}
