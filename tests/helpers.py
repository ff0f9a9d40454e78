"""Helpers shared by API tests (a module of its own: `conftest` names clash between test folders)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def wait_job(client, job_id: str, timeout: float = 60.0) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s")


def job_events(client, job_id: str) -> list[tuple[str, dict]]:  # noqa: ANN001
    """A job's Server-Sent Events, read to the end: [(event name, decoded data), ...]."""
    import json

    out, event = [], "message"
    with client.stream("GET", f"/api/jobs/{job_id}/events") as r:
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                out.append((event, json.loads(line[5:])))
    return out


SMALL = {"width": 64, "height": 64, "steps": 2, "guidance": 5.0}


def screenshot_path(name: str, tmp_path: Path) -> Path:
    """Where a browser test writes screenshot `name`: `tmp_path`, or the folder in GENSTUDIO_SCREENSHOTS
    (`GENSTUDIO_SCREENSHOTS=docs/images make test` refreshes the README's pictures)."""
    folder = Path(os.environ["GENSTUDIO_SCREENSHOTS"]) if os.environ.get("GENSTUDIO_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
