"""The embedded queue: cancel mid-run, queue limit, restart after a crash, atomic outputs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from genstudio.jobs.base import JobCancelled, JobFailed, OutputFile, QueueFull
from genstudio.jobs.local import LocalQueue
from genstudio.storage.db import Store, make_engine
from genstudio.storage.files import FileStore


def make_queue(tmp_path: Path, max_jobs: int = 3) -> LocalQueue:
    store = Store(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    files = FileStore(tmp_path / "assets", tmp_path / "tmp")
    return LocalQueue(store, files, max_jobs=max_jobs)


def wait(q: LocalQueue, job_id: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = q.store.get_job(job_id)
        if job and job.status in ("succeeded", "failed", "cancelled"):
            return job.status
        time.sleep(0.02)
    raise AssertionError("job did not finish")


def test_runs_jobs_in_order_with_progress_and_outputs(tmp_path: Path) -> None:
    q = make_queue(tmp_path)
    seen: list[float] = []

    def handler(ctx):  # noqa: ANN001, ANN202
        for i in range(5):
            ctx.progress((i + 1) / 5)
            seen.append(q.snapshot(ctx.job.id)[0].progress)
        return [OutputFile(data=f"out-{ctx.job.params['n']}".encode(), mime="image/png", kind="image", seed=1)]

    q.register("t", handler)
    q.start()
    try:
        jobs = [q.submit("t", {"n": i}) for i in range(3)]
        assert [wait(q, j.id) for j in jobs] == ["succeeded"] * 3
    finally:
        q.stop()
    assert seen[:5] == [0.2, 0.4, 0.6, 0.8, 1.0]
    for i, j in enumerate(jobs):
        (asset,) = q.store.job_assets(j.id)
        assert q.files.abspath(asset.path).read_bytes() == f"out-{i}".encode()
    finished = [q.store.get_job(j.id).finished_at for j in jobs]
    assert finished == sorted(finished)


def test_cancel_mid_run_and_before_start(tmp_path: Path) -> None:
    q = make_queue(tmp_path)
    started = threading.Event()

    def slow(ctx):  # noqa: ANN001, ANN202
        started.set()
        for _ in range(500):
            time.sleep(0.01)
            ctx.progress(0.5)
        return [OutputFile(data=b"x", mime="image/png", kind="image")]

    q.register("slow", slow)
    q.start()
    try:
        running = q.submit("slow", {})
        waiting = q.submit("slow", {})
        assert started.wait(5)
        q.cancel(waiting.id)
        assert q.store.get_job(waiting.id).status == "cancelled"
        q.cancel(running.id)
        assert wait(q, running.id) == "cancelled"
    finally:
        q.stop()
    assert q.store.job_assets(running.id) == []
    assert list((tmp_path / "assets").rglob("*.*")) == []


def test_full_queue_raises_and_failures_keep_reason(tmp_path: Path) -> None:
    q = make_queue(tmp_path, max_jobs=2)

    def boom(ctx):  # noqa: ANN001, ANN202
        raise JobFailed("model exploded politely")

    q.register("boom", boom)
    a = q.submit("boom", {})
    q.submit("boom", {})
    with pytest.raises(QueueFull, match="at most 2"):
        q.submit("boom", {})
    q.start()
    try:
        assert wait(q, a.id) == "failed"
    finally:
        q.stop()
    assert q.store.get_job(a.id).error == "model exploded politely"


def test_restart_after_crash_reruns_or_fails_and_sweeps_files(tmp_path: Path) -> None:
    q = make_queue(tmp_path, max_jobs=10)
    q.register("t", lambda ctx: [OutputFile(data=b"fresh", mime="image/png", kind="image")])
    queued = q.submit("t", {})
    interrupted = q.submit("t", {})
    twice = q.submit("t", {})
    # Simulate a crash: one job was running (first attempt), one had already been interrupted once,
    # a half-written temp file and an orphan file (written, row never committed) are on disk.
    q.store.update_job(interrupted.id, status="running", attempts=1)
    q.store.update_job(twice.id, status="running", attempts=2)
    (tmp_path / "tmp" / "x.part").write_bytes(b"half")
    orphan = tmp_path / "assets" / "ab" / "abcdef.png"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"orphan")

    q2 = make_queue(tmp_path, max_jobs=10)
    q2.register("t", lambda ctx: [OutputFile(data=b"fresh", mime="image/png", kind="image")])
    q2.start()
    try:
        assert wait(q2, queued.id) == "succeeded"
        assert wait(q2, interrupted.id) == "succeeded"
        assert wait(q2, twice.id) == "failed"
    finally:
        q2.stop()
    assert "interrupted 2 times" in q2.store.get_job(twice.id).error
    assert not (tmp_path / "tmp" / "x.part").exists() and not orphan.exists()
    assert len(q2.store.job_assets(interrupted.id)) == 1


def test_rerun_replaces_earlier_assets_instead_of_duplicating(tmp_path: Path) -> None:
    q = make_queue(tmp_path)
    q.register(
        "t",
        lambda ctx: [
            OutputFile(data=b"a", mime="image/png", kind="image"),
            OutputFile(data=b"b", mime="image/png", kind="image"),
        ],
    )
    job = q.submit("t", {})
    claimed = q._claim()
    q.run_job(claimed)
    first = {a.id for a in q.store.job_assets(job.id)}
    q.run_job(q.store.get_job(job.id))  # at-least-once delivery: the same job again
    second = q.store.job_assets(job.id)
    assert len(second) == 2 and first.isdisjoint({a.id for a in second})
    assert len(list((tmp_path / "assets").rglob("*.png"))) == 2


def test_cancel_exception_from_handler_code(tmp_path: Path) -> None:
    q = make_queue(tmp_path)

    def h(ctx):  # noqa: ANN001, ANN202
        raise JobCancelled()

    q.register("c", h)
    job = q.submit("c", {})
    q.run_job(q._claim())
    assert q.store.get_job(job.id).status == "cancelled"


def test_a_job_end_the_database_refuses_is_shown_from_memory_and_written_when_it_can(tmp_path: Path) -> None:
    """SQLite says "database or disk is full" when the job's end is written: readers still see the end at
    once, health counts it as unsaved, the worker thread lives on and writes it when the database takes it."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    q = make_queue(tmp_path)
    q.retry_interval_s = 0.02
    refuse = threading.Event()
    real_update = q.store.update_job

    def update_job(job_id: str, **fields):  # noqa: ANN003, ANN202
        if refuse.is_set() and fields.get("status") in ("failed", "succeeded"):
            raise OperationalError("UPDATE job", {}, sqlite3.OperationalError("database or disk is full"))
        return real_update(job_id, **fields)

    q.store.update_job = update_job  # type: ignore[method-assign]

    def handler(ctx):  # noqa: ANN001, ANN202
        refuse.set()
        raise JobFailed("the model broke")

    q.register("t", handler)
    q.start()
    try:
        job = q.submit("t", {})
        deadline = time.monotonic() + 10
        while q.health()["unsaved_jobs"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert q.health()["unsaved_jobs"] == 1
        seen, _ = q.snapshot(job.id)
        assert (seen.status, seen.error) == ("failed", "the model broke")
        assert q.store.get_job(job.id).status == "running"  # not yet in the database
        assert [w["alive"] for w in q.health()["workers"]] == [True]
        refuse.clear()
        assert wait(q, job.id) == "failed"
        assert q.store.get_job(job.id).error == "the model broke"
        assert q.health()["unsaved_jobs"] == 0 and not q.in_memory(job.id)
    finally:
        q.stop()
