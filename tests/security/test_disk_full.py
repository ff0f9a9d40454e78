"""A full data disk is survived: a job that cannot write its outputs fails with the reason and the worker
goes on; uploads answer 507; health says what is wrong; assets can be deleted to make room; and once there
is room the queue runs again. On a real 20 MB tmpfs (skipped, with the reason, where mounting is refused)."""

from __future__ import annotations

import errno
import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from genstudio.jobs.base import OutputFile
from helpers import wait_job

DISK_MB = 20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a {DISK_MB} MB tmpfs here ({done.stderr.strip() or 'not permitted'})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path, leave: int = 0) -> Path:
    """Fill the disk holding `path` until `leave` bytes (or fewer) are free."""
    filler = path / f"filler-{len(list(path.glob('filler-*')))}"
    with open(filler, "wb") as f:
        block = b"\0" * (1 << 20)
        while True:
            free = os.statvfs(path).f_bavail * os.statvfs(path).f_frsize
            want = free - leave
            if want <= 0:
                break
            try:
                f.write(block[: min(len(block), want)])
                f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    return filler


def noise_png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def app_on_small_disk(small_disk: Path) -> Iterator[tuple[TestClient, Path]]:
    from genstudio.api.app import create_app
    from genstudio.config import Settings

    settings = Settings(data_dir=small_disk / "data", executor="thread", min_free_disk_mb=0, max_queued_jobs=8)
    app = create_app(settings)
    state = app.state.genstudio
    state.queue.retry_interval_s = 0.05
    big = noise_png(900)  # about 2.4 MB, incompressible

    def writes_big(ctx) -> list[OutputFile]:  # noqa: ANN001 - a studio whose output is larger than the room left
        return [OutputFile(data=big, mime="image/png", kind="image")]

    state.queue.register("bigwriter", writes_big)
    with TestClient(app) as client:
        yield client, small_disk
    state.store.engine.dispose()


def test_enospc_while_writing_outputs_fails_the_job_and_the_worker_goes_on(app_on_small_disk) -> None:  # noqa: ANN001
    client, disk = app_on_small_disk
    queue = client.app.state.genstudio.queue
    uploaded = [client.post("/api/uploads", files={"file": ("n.png", noise_png(700), "image/png")}) for _ in range(2)]
    assert [r.status_code for r in uploaded] == [201, 201]
    filler = fill(disk, leave=256 * 1024)  # room for the database, not for a 2.4 MB output

    job = queue.submit("bigwriter", {})
    ended = wait_job(client, job.id)
    assert ended["status"] == "failed"
    assert "data disk is full" in ended["error"] and "delete assets" in ended["error"]
    assert not list((disk / "data" / "tmp").glob("*.part")), "the half-written output was left behind"

    # The worker is alive and idle, and says so; an upload is refused as 507, not 500.
    health = client.get("/api/health").json()
    assert [w["alive"] for w in health["workers"]] == [True]
    assert health["disk"]["free_bytes"] < 1 << 20
    refused = client.post("/api/uploads", files={"file": ("n.png", noise_png(700), "image/png")})
    assert refused.status_code == 507, refused.text
    assert "disk is full" in refused.json()["detail"]

    # Space is made through the API (on the full disk), and the next job runs.
    fill(disk, leave=0)
    for r in uploaded:
        gone = client.delete(f"/api/assets/{r.json()['asset_id']}")
        assert gone.status_code == 200, gone.text
        assert client.get(f"/api/assets/{r.json()['asset_id']}/meta").status_code == 404
    for f in disk.glob("filler-*"):
        f.unlink()
    assert not filler.exists()
    again = queue.submit("bigwriter", {})
    assert wait_job(client, again.id)["status"] == "succeeded"
    assert client.get("/api/health").json()["status"] == "ok"


def test_a_disk_too_full_for_the_database_refuses_new_work_with_507_and_recovers(app_on_small_disk) -> None:  # noqa: ANN001
    client, disk = app_on_small_disk
    fill(disk, leave=0)
    refused = client.post("/api/music/sample", json={"n": 1, "bars": 2, "seed": 3})
    assert refused.status_code == 507, refused.text
    health = client.get("/api/health")
    assert health.status_code == 200 and health.json()["disk"]["free_bytes"] == 0
    for f in disk.glob("filler-*"):
        f.unlink()
    made = client.post("/api/music/sample", json={"n": 1, "bars": 2, "seed": 3})
    assert made.status_code == 202, made.text
    assert wait_job(client, made.json()["job_id"])["status"] == "succeeded"


def test_under_the_free_space_floor_new_jobs_are_refused_and_health_is_degraded(app_on_small_disk) -> None:  # noqa: ANN001
    client, disk = app_on_small_disk
    state = client.app.state.genstudio
    state.settings.min_free_disk_mb = 8
    state.queue.min_free_bytes = 8 << 20
    fill(disk, leave=4 << 20)
    refused = client.post("/api/music/sample", json={"n": 1, "bars": 2, "seed": 3})
    assert refused.status_code == 507
    assert "GENSTUDIO_MIN_FREE_DISK_MB" in refused.json()["detail"]
    health = client.get("/api/health").json()
    assert health["status"] == "degraded" and health["disk"]["ok"] is False
    assert any("GENSTUDIO_MIN_FREE_DISK_MB" in p for p in health["problems"])
