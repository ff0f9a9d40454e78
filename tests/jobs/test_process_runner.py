"""Jobs in a child process: results, progress, cancel, a crashing job, shutdown mid-job."""

from __future__ import annotations

import os
import threading
import time
from functools import partial
from pathlib import Path

from genstudio.config import Settings
from genstudio.jobs.local import LocalQueue
from genstudio.jobs.process import ProcessRunner
from genstudio.storage.db import Store, make_engine
from genstudio.storage.files import FileStore


def make_queue(tmp_path: Path) -> LocalQueue:
    store = Store(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    files = FileStore(tmp_path / "assets", tmp_path / "tmp")
    factory = partial(ProcessRunner, "fake_handlers:make", Settings(data_dir=tmp_path))
    q = LocalQueue(store, files, max_jobs=10, runner_factory=factory)
    for kind in ("ok", "slow", "crash", "fail"):
        q.register(kind, lambda ctx: [])  # the parent only needs to know the kinds
    return q


def wait(q: LocalQueue, job_id: str, status: tuple[str, ...] = ("succeeded", "failed", "cancelled")) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = q.store.get_job(job_id)
        if job.status in status:
            return job.status
        time.sleep(0.02)
    raise AssertionError(f"job stuck in {q.store.get_job(job_id).status}")


def test_child_process_runs_jobs_and_survives_a_crash(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    q = make_queue(tmp_path)
    q.start()
    try:
        a = q.submit("ok", {"n": 1})
        crash = q.submit("crash", {})
        failed = q.submit("fail", {})
        b = q.submit("ok", {"n": 2})
        assert wait(q, a.id) == "succeeded"
        assert wait(q, crash.id) == "failed"
        assert "worker process died (exit code 3)" in q.store.get_job(crash.id).error
        assert wait(q, failed.id) == "failed" and q.store.get_job(failed.id).error == "no such thing"
        assert wait(q, b.id) == "succeeded"

        slow = q.submit("slow", {})
        assert wait(q, slow.id, ("running",)) == "running"
        time.sleep(0.3)
        assert q.snapshot(slow.id)[0].progress == 0.5
        q.cancel(slow.id)
        assert wait(q, slow.id) == "cancelled"
    finally:
        q.stop()
    out_a = q.files.abspath(q.store.job_assets(a.id)[0].path).read_bytes().decode()
    out_b = q.files.abspath(q.store.job_assets(b.id)[0].path).read_bytes().decode()
    assert out_a.endswith("n 1") and out_b.endswith("n 2")
    assert int(out_a.split()[1]) != os.getpid()  # ran in the child
    assert out_a.split()[1] != out_b.split()[1]  # a new child after the crash


def test_shutdown_mid_job_puts_it_back_in_the_queue(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    q = make_queue(tmp_path)
    q.start()
    slow = q.submit("slow", {})
    wait(q, slow.id, ("running",))
    stopper = threading.Thread(target=q.stop)
    stopper.start()
    stopper.join(20)
    job = q.store.get_job(slow.id)
    assert job.status == "queued" and job.attempts == 0
