"""Distributed queue: Celery with a Redis broker, behind the same interface as the local queue.

The database stays the source of truth (status, progress, heartbeat, assets); Celery only carries job
ids. One Celery queue per studio (`genstudio.image`, ...), `acks_late` and prefetch 1, and every
delivery is idempotent: a worker claims the row atomically before running, so a job delivered twice
runs once, and its outputs replace (never add to) what an earlier attempt committed.

A worker that dies mid-job (kill -9, lost machine) stops beating; the server's reaper puts the job back
on its queue after `GENSTUDIO_HEARTBEAT_TIMEOUT_S` (or fails it after too many attempts).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

from celery import Celery
from sqlalchemy import or_, update

from genstudio.config import Settings
from genstudio.jobs.base import Handler, JobCancelled, JobFailed, QueueFull
from genstudio.jobs.outputs import save_outputs
from genstudio.storage.db import FINAL_STATUSES, Asset, Job, Store, utcnow
from genstudio.storage.files import FileStore

log = logging.getLogger(__name__)
TASK_NAME = "genstudio.run_job"
MAX_ATTEMPTS = 3


def queue_name(kind: str) -> str:
    return f"genstudio.{kind}"


def make_celery(settings: Settings) -> Celery:
    app = Celery("genstudio", broker=settings.broker_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        # Redis re-delivers an unacknowledged job after this; the claim makes a duplicate a no-op.
        broker_transport_options={"visibility_timeout": 3600},
        worker_hijack_root_logger=False,
    )
    return app


PREVIEW_TTL_S = 120  # a live preview outlives its job by this much at most


def _preview_key(job_id: str) -> str:
    return f"genstudio:preview:{job_id}"


def preview_store(settings: Settings) -> Any:
    """Where workers leave live previews for the server: the Redis broker itself (None for other brokers)."""
    if not (settings.broker_url or "").startswith(("redis://", "rediss://")):
        return None
    import redis

    return redis.Redis.from_url(settings.broker_url, socket_timeout=1.0)


class DistributedQueue:
    """The server's side: enqueue, cancel, read status, and reap jobs of dead workers."""

    poll_interval = 0.25  # SSE reads progress from the database at this pace

    def __init__(self, settings: Settings, store: Store, files: FileStore) -> None:
        self.settings = settings
        self.store = store
        self.files = files
        self.celery = make_celery(settings)
        self.max_jobs = settings.max_queued_jobs
        self._kinds: set[str] = set()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        self._submit_lock = threading.Lock()
        self._previews: Any = None

    def latest_preview(self, job_id: str) -> tuple[int, dict[str, Any]] | None:
        """The running job's latest live preview, left in Redis by its worker: (sequence number, data)."""
        try:
            if self._previews is None:
                self._previews = preview_store(self.settings) or False
            raw = self._previews.get(_preview_key(job_id)) if self._previews else None
        except Exception:  # noqa: BLE001 - a preview is a nicety: never an error for the reader
            return None
        if not raw:
            return None
        found = json.loads(raw)
        return int(found["seq"]), found["data"]

    def register(self, kind: str, handler: Handler) -> None:
        self._kinds.add(kind)

    def submit(self, kind: str, params: dict[str, Any]) -> Job:
        if kind not in self._kinds:
            raise ValueError(f"no handler for job kind {kind!r}")
        with self._submit_lock:
            if self.store.count_jobs(("queued", "running")) >= self.max_jobs:
                raise QueueFull(self.max_jobs)
            job = self.store.add_job(kind, params)
        self._send(job)
        return job

    def _send(self, job: Job) -> None:
        self.celery.send_task(TASK_NAME, args=[job.id], queue=queue_name(job.kind))

    def cancel(self, job_id: str) -> Job | None:
        job = self.store.get_job(job_id)
        if job is None or job.status in FINAL_STATUSES:
            return job
        if job.status == "queued":
            with self.store.session() as s:
                done = s.exec(  # type: ignore[call-overload]
                    update(Job)
                    .where(Job.id == job_id, Job.status == "queued")
                    .values(status="cancelled", finished_at=utcnow(), error="cancelled before it started")
                ).rowcount
                s.commit()
            if done:
                return self.store.get_job(job_id)
        return self.store.update_job(job_id, cancel_requested=True)

    def snapshot(self, job_id: str) -> tuple[Job, list[Asset]] | None:
        job = self.store.get_job(job_id)
        if job is None:
            return None
        return job, self.store.job_assets(job_id) if job.status == "succeeded" else []

    def in_memory(self, job_id: str) -> bool:
        return False

    def watch(self, job_id: str) -> Any:
        import asyncio

        return asyncio.Event()  # never set: readers fall back to polling at `poll_interval`

    def unwatch(self, job_id: str, event: Any) -> None:
        pass

    def start(self) -> None:
        self._stop.clear()
        self._reaper = threading.Thread(target=self._reap_loop, name="genstudio-reaper", daemon=True)
        self._reaper.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._reaper:
            self._reaper.join(timeout)

    def _reap_loop(self) -> None:
        while not self._stop.wait(max(1.0, self.settings.heartbeat_timeout_s / 4)):
            try:
                self.reap()
            except Exception:  # noqa: BLE001 - the reaper must outlive a database hiccup
                log.exception("reaper pass failed")

    def reap(self) -> list[str]:
        """Re-queue (or fail) running jobs whose worker stopped beating. Returns the job ids touched."""
        stale_before = utcnow() - timedelta(seconds=self.settings.heartbeat_timeout_s)
        touched = []
        for job in self.store.jobs_with_status(("running",)):
            beat = job.heartbeat_at
            if beat is not None and beat.tzinfo is None:
                beat = beat.replace(tzinfo=stale_before.tzinfo)
            if beat is not None and beat >= stale_before:
                continue
            with self.store.session() as s:
                fields: dict[str, Any]
                if job.attempts >= MAX_ATTEMPTS:
                    fields = {
                        "status": "failed",
                        "finished_at": utcnow(),
                        "error": f"its worker stopped responding {job.attempts} times; not retried again",
                    }
                else:
                    fields = {"status": "queued", "progress": 0.0, "worker": None}
                moved = s.exec(  # type: ignore[call-overload]
                    update(Job)
                    .where(Job.id == job.id, Job.status == "running", Job.worker == job.worker)
                    .values(**fields)
                ).rowcount
                s.commit()
            if moved:
                touched.append(job.id)
                if fields["status"] == "queued":
                    log.warning("job %s: worker %s stopped beating; re-queued", job.id, job.worker)
                    self._send(job)
        return touched


class _WorkerContext:
    def __init__(self, store: Store, job: Job, worker: str, beat_every: float, previews: Any = None) -> None:
        self.store = store
        self.job = job
        self.worker = worker
        self.beat_every = beat_every
        self.previews = previews
        self._last_write = 0.0
        self._fraction = 0.0
        self._seq = 0

    def preview(self, data: dict[str, Any]) -> None:
        """Leave the job's latest live preview where the server's SSE readers find it (Redis, with a TTL)."""
        if self.previews is None:
            return
        self._seq += 1
        try:
            self.previews.set(_preview_key(self.job.id), json.dumps({"seq": self._seq, "data": data}),
                              ex=PREVIEW_TTL_S)
        except Exception:  # noqa: BLE001 - a lost preview must not fail the job
            log.debug("preview of job %s not stored", self.job.id, exc_info=True)

    def check_cancelled(self) -> None:
        job = self.store.get_job(self.job.id)
        if job is None or job.cancel_requested or job.status == "cancelled":
            raise JobCancelled()

    def progress(self, fraction: float, message: str | None = None) -> None:
        self._fraction = min(max(float(fraction), 0.0), 1.0)
        now = time.monotonic()
        if now - self._last_write >= 0.25 or self._fraction >= 1.0:
            self._last_write = now
            self.store.update_job(self.job.id, progress=self._fraction, heartbeat_at=utcnow())
            self.check_cancelled()

    def beat(self) -> None:
        self.store.update_job(self.job.id, heartbeat_at=utcnow())


class Worker:
    """A worker process's side: claims jobs by id and runs them with handlers that keep models loaded."""

    def __init__(self, settings: Settings, store: Store, files: FileStore, handlers: dict[str, Handler]) -> None:
        self.settings = settings
        self.store = store
        self.files = files
        self.handlers = handlers
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.previews = preview_store(settings)

    def claim(self, job_id: str) -> Job | None:
        """Atomically take a queued job (or one whose worker went silent); None if someone else has it."""
        stale_before = utcnow() - timedelta(seconds=self.settings.heartbeat_timeout_s)
        with self.store.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                return None
            taken = s.exec(  # type: ignore[call-overload]
                update(Job)
                .where(
                    Job.id == job_id,
                    or_(
                        Job.status == "queued",
                        (Job.status == "running") & or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < stale_before),
                    ),
                )
                .values(
                    status="running",
                    worker=self.name,
                    attempts=Job.attempts + 1,
                    heartbeat_at=utcnow(),
                    started_at=utcnow(),
                    progress=0.0,
                )
            ).rowcount
            s.commit()
        return self.store.get_job(job_id) if taken else None

    def run(self, job_id: str) -> str:
        job = self.claim(job_id)
        if job is None:
            return "skipped"  # finished, cancelled, or running elsewhere: a duplicate delivery
        if job.cancel_requested:
            self.store.update_job(job_id, status="cancelled", finished_at=utcnow(), error="cancelled")
            return "cancelled"
        ctx = _WorkerContext(self.store, job, self.name, self.settings.heartbeat_timeout_s / 4, self.previews)
        beating = threading.Event()

        def heartbeat() -> None:  # a long model step must not look like a dead worker
            while not beating.wait(ctx.beat_every):
                try:
                    ctx.beat()
                except Exception:  # noqa: BLE001
                    log.exception("heartbeat failed")

        beater = threading.Thread(target=heartbeat, daemon=True)
        beater.start()
        try:
            outputs = self.handlers[job.kind](ctx)
            save_outputs(self.store, self.files, job.id, outputs, owner=self.name)
            self._finish(job.id, status="succeeded", progress=1.0, error=None)
            return "succeeded"
        except JobCancelled:
            self._finish(job.id, status="cancelled", error="cancelled")
            return "cancelled"
        except (JobFailed, ValueError) as exc:
            self._finish(job.id, status="failed", error=str(exc))
            return "failed"
        except Exception as exc:  # noqa: BLE001 - a job must end with a reason, whatever broke
            log.exception("job %s failed", job.id)
            self._finish(job.id, status="failed", error=f"{type(exc).__name__}: {exc}")
            return "failed"
        finally:
            beating.set()
            beater.join(5)

    def _finish(self, job_id: str, **fields: Any) -> None:
        with self.store.session() as s:
            s.exec(  # type: ignore[call-overload]
                update(Job)
                .where(Job.id == job_id, Job.worker == self.name, Job.status == "running")
                .values(finished_at=utcnow(), **fields)
            )
            s.commit()


def run_worker(
    settings: Settings,
    queues: list[str],
    handlers: dict[str, Handler],
    store: Store,
    files: FileStore,
    *,
    loglevel: str = "INFO",
) -> None:
    """Start a Celery worker in this process (solo pool: one job at a time, models stay loaded)."""
    files.sweep_tmp(older_than_s=3600.0)  # the data dir may be shared: only what is surely stale
    worker = Worker(settings, store, files, handlers)
    app = make_celery(settings)

    @app.task(name=TASK_NAME, bind=True, acks_late=True)
    def run_job(task: Any, job_id: str) -> str:
        return worker.run(job_id)

    app.Worker(
        queues=[queue_name(q) for q in queues],
        pool="solo",
        concurrency=1,
        loglevel=loglevel,
        hostname=f"genstudio@{worker.name}",
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
    ).start()
