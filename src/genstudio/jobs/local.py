"""Embedded, persistent job queue: rows in the database, worker threads in the server process.

Jobs survive restarts: queued jobs run when the server comes back; a job that was running when the
process died is re-run once (its earlier files and rows are replaced, never duplicated) and failed
with a reason if it is interrupted again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from genstudio.errors import DiskFull, is_disk_full
from genstudio.jobs.base import Handler, JobCancelled, JobFailed, JobInterrupted, QueueFull
from genstudio.jobs.outputs import save_outputs
from genstudio.storage.db import FINAL_STATUSES, Asset, Job, Store, utcnow
from genstudio.storage.files import FileStore

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2
PROGRESS_DB_INTERVAL_S = 0.5


class _Context:
    def __init__(self, queue: LocalQueue, job: Job) -> None:
        self.queue = queue
        self.job = job
        self._last_write = 0.0

    def check_cancelled(self) -> None:
        if self.job.id in self.queue._cancel_requests:
            raise JobCancelled()

    def preview(self, data: dict[str, Any]) -> None:
        self.queue._previews[self.job.id] = (self.queue._preview_seq(), data)
        self.queue._notify(self.job.id)

    def progress(self, fraction: float, message: str | None = None) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        self.queue._live[self.job.id] = fraction
        self.queue._notify(self.job.id)
        now = time.monotonic()
        if now - self._last_write >= PROGRESS_DB_INTERVAL_S:
            self._last_write = now
            self.queue.store.update_job(self.job.id, progress=fraction)
        self.check_cancelled()


class LocalQueue:
    def __init__(
        self,
        store: Store,
        files: FileStore,
        *,
        max_jobs: int,
        workers: int = 1,
        runner_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.store = store
        # With a runner factory each worker thread hands its jobs to its own runner (a child process
        # that keeps models loaded); without one, handlers run in the worker thread itself.
        self.runner_factory = runner_factory
        self.files = files
        self.max_jobs = max_jobs
        self.n_workers = workers
        self._handlers: dict[str, Handler] = {}
        self._live: dict[str, float] = {}
        # The latest live preview of each running job: (sequence number, {"step", "steps", "image"}).
        self._previews: dict[str, tuple[int, dict[str, Any]]] = {}
        self._seq = 0
        # Jobs not yet finished, as last written: status polls and SSE read them without the database.
        self._active: dict[str, Job] = {}
        self._watchers: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._watch_lock = threading.Lock()
        self._cancel_requests: set[str] = set()
        self._wake = threading.Condition()
        self._claim_lock = threading.Lock()
        self._submit_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._runners: list[Any] = []
        # What each worker thread is doing, for /api/health; and final states the database refused
        # (a full disk), written again until it takes them.
        self._workers: dict[str, dict[str, Any]] = {}
        self._unsaved: dict[str, dict[str, Any]] = {}
        self.retry_interval_s = 1.0

    # Interface
    def register(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def submit(self, kind: str, params: dict[str, Any]) -> Job:
        if kind not in self._handlers:
            raise ValueError(f"no handler for job kind {kind!r}")
        self.check_space()
        with self._submit_lock:
            if self.store.count_jobs(("queued", "running")) >= self.max_jobs:
                raise QueueFull(self.max_jobs)
            job = self.store.add_job(kind, params)
            self._active[job.id] = job
        with self._wake:
            self._wake.notify()
        return job

    def cancel(self, job_id: str) -> Job | None:
        job = self.store.get_job(job_id)
        if job is None or job.status in FINAL_STATUSES:
            return job
        with self._claim_lock:
            job = self.store.get_job(job_id)
            if job is not None and job.status == "queued":
                return self._set(job_id, status="cancelled", finished_at=utcnow(), error="cancelled before it started")
        self._cancel_requests.add(job_id)
        return self._set(job_id, cancel_requested=True)

    def snapshot(self, job_id: str) -> tuple[Job, list[Asset]] | None:
        job = self._active.get(job_id)
        if job is None:
            job = self.store.get_job(job_id)
            if job is None:
                return None
        live = self._live.get(job_id)
        if live is not None and job.status == "running":
            job.progress = live
        assets = self.store.job_assets(job_id) if job.status == "succeeded" else []
        return job, assets

    min_free_bytes = 0  # set by the app from GENSTUDIO_MIN_FREE_DISK_MB

    def check_space(self) -> None:
        """Refuse new work (DiskFull: a 507) while the data disk is under its free-space floor: the job
        could not save what it makes."""
        if self.min_free_bytes <= 0:
            return
        try:
            free = self.files.usage().free_bytes
        except OSError:
            return
        if free < self.min_free_bytes:
            raise DiskFull(
                f"the data disk has {free:,} bytes free, under the floor of {self.min_free_bytes:,} "
                "(GENSTUDIO_MIN_FREE_DISK_MB): delete assets to make room"
            )

    def health(self) -> dict[str, Any]:
        """Each worker thread's state (idle | running | retrying), alive or not, its job and last error."""
        out = []
        for t in self._threads:
            info = dict(self._workers.get(t.name, {}))
            out.append({"name": t.name, "alive": t.is_alive(), "state": info.get("state", "starting"),
                        "job_id": info.get("job_id"), "last_error": info.get("last_error")})
        return {"workers": out, "unsaved_jobs": len(self._unsaved)}

    def _preview_seq(self) -> int:
        self._seq += 1
        return self._seq

    def latest_preview(self, job_id: str) -> tuple[int, dict[str, Any]] | None:
        """The running job's latest live preview (sequence number, data), if it sent one."""
        return self._previews.get(job_id)

    def in_memory(self, job_id: str) -> bool:
        """True when a snapshot of this job needs no database read (it is queued or running here)."""
        return job_id in self._active

    # Change notification for async readers (SSE): an asyncio.Event set from the worker thread.
    def watch(self, job_id: str) -> asyncio.Event:
        event = asyncio.Event()
        with self._watch_lock:
            self._watchers.setdefault(job_id, set()).add((asyncio.get_running_loop(), event))
        return event

    def unwatch(self, job_id: str, event: asyncio.Event) -> None:
        with self._watch_lock:
            watchers = self._watchers.get(job_id, set())
            for item in [w for w in watchers if w[1] is event]:
                watchers.discard(item)
            if not watchers:
                self._watchers.pop(job_id, None)

    def _notify(self, job_id: str) -> None:
        with self._watch_lock:
            watchers = list(self._watchers.get(job_id, ()))
        for loop, event in watchers:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop closed: its reader is gone
                pass

    def _set(self, job_id: str, **fields: Any) -> Job | None:
        """Write a job's fields to the database and to the in-memory view, then wake its readers."""
        job = self.store.update_job(job_id, **fields)
        if job is not None:
            if job.status in FINAL_STATUSES:
                self._active.pop(job_id, None)
            else:
                self._active[job_id] = job
        self._notify(job_id)
        return job

    def _finish(self, job_id: str, **fields: Any) -> None:
        """Record a job's end. When the database cannot take it (a full disk), readers see the end from
        memory at once and the write is tried again by the worker until it lands: a job never stays
        'running' because its failure could not be written."""
        try:
            self._set(job_id, **fields)
            self._unsaved.pop(job_id, None)
        except Exception as exc:  # noqa: BLE001 - whatever the database says, the worker goes on
            log.warning("job %s: could not record its end (%s); retrying", job_id, exc)
            self._unsaved[job_id] = {**self._unsaved.get(job_id, {}), **fields}
            job = self._active.get(job_id)
            if job is not None:
                self._active[job_id] = Job.model_validate({**job.model_dump(), **fields})
            self._notify(job_id)

    def _flush_unsaved(self) -> None:
        for job_id, fields in list(self._unsaved.items()):
            try:
                self._set(job_id, **fields)
            except Exception:  # noqa: BLE001 - still refused; next round
                return
            self._unsaved.pop(job_id, None)

    def start(self) -> None:
        self.recover()
        self._stop.clear()
        for i in range(self.n_workers):
            t = threading.Thread(target=self._worker, name=f"genstudio-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for runner in self._runners:
            runner.abort()
        self._runners.clear()
        with self._wake:
            self._wake.notify_all()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    # Recovery
    def recover(self) -> None:
        """Make every job either runnable or finished, and remove half-written or orphan files."""
        for job in self.store.jobs_with_status(("running",)):
            if job.cancel_requested:
                self.store.update_job(job.id, status="cancelled", finished_at=utcnow(), error="cancelled")
            elif job.attempts >= MAX_ATTEMPTS:
                self.store.update_job(
                    job.id,
                    status="failed",
                    finished_at=utcnow(),
                    error=f"interrupted {job.attempts} times by a server stop; not retried again",
                )
            else:
                self.store.update_job(job.id, status="queued", progress=0.0)
        removed = self.files.sweep(self.store.all_asset_paths())
        if removed:
            log.info("removed %d leftover files", len(removed))

    # Worker
    def _claim(self) -> Job | None:
        with self._claim_lock:
            queued = self.store.jobs_with_status(("queued",))
            if not queued:
                return None
            job = queued[0]
            return self._set(job.id, status="running", started_at=utcnow(), attempts=job.attempts + 1, progress=0.0)

    def _worker(self) -> None:
        me = threading.current_thread().name
        state = self._workers.setdefault(me, {"state": "idle", "job_id": None, "last_error": None})
        runner = self.runner_factory() if self.runner_factory else None
        if runner is not None:
            self._runners.append(runner)
        try:
            while not self._stop.is_set():
                # Nothing that goes wrong here ends the thread: a database or disk that refuses a write
                # is retried after a pause, and the queue goes on once it takes writes again.
                try:
                    self._flush_unsaved()
                    job = self._claim()
                    if job is None:
                        state.update(state="idle", job_id=None)
                        with self._wake:
                            self._wake.wait(timeout=1.0)
                        continue
                    state.update(state="running", job_id=job.id)
                    self.run_job(job, runner)
                    state.update(state="idle", job_id=None)
                except Exception as exc:  # noqa: BLE001
                    log.exception("worker %s: queue step failed; retrying", me)
                    state.update(state="retrying", last_error=f"{type(exc).__name__}: {exc}"[:300])
                    self._stop.wait(self.retry_interval_s)
        finally:
            state.update(state="stopped", job_id=None)
            if runner is not None:
                runner.stop()

    def run_job(self, job: Job, runner: Any = None) -> None:
        ctx = _Context(self, job)
        self._live[job.id] = 0.0
        try:
            handler = self._handlers[job.kind]
            ctx.check_cancelled()
            outputs = runner.run(job, ctx) if runner is not None else handler(ctx)
            ctx.check_cancelled()
            try:
                save_outputs(self.store, self.files, job.id, outputs)
            except Exception as exc:
                if is_disk_full(exc) and not isinstance(exc, DiskFull):
                    raise self.files.full("could not save the job's outputs") from exc
                raise
            self._finish(job.id, status="succeeded", progress=1.0, finished_at=utcnow(), error=None)
        except JobCancelled:
            self._finish(job.id, status="cancelled", finished_at=utcnow(), error="cancelled")
        except JobInterrupted:
            # Not the job's fault: it runs again, from the start, when the server is back.
            self._finish(job.id, status="queued", progress=0.0, attempts=max(job.attempts - 1, 0))
        except (JobFailed, ValueError, DiskFull) as exc:
            reason = str(exc)
            if is_disk_full(exc) and not isinstance(exc, DiskFull):  # e.g. the job process's ENOSPC
                reason = str(self.files.full(f"the job could not write ({reason})"))
            self._finish(job.id, status="failed", finished_at=utcnow(), error=reason)
        except Exception as exc:  # noqa: BLE001 - a job must end with a reason, whatever broke
            log.exception("job %s failed", job.id)
            reason = f"{type(exc).__name__}: {exc}"
            if is_disk_full(exc):
                reason = str(self.files.full(f"the job could not write ({reason})"))
            self._finish(job.id, status="failed", finished_at=utcnow(), error=reason)
        finally:
            self._live.pop(job.id, None)
            self._previews.pop(job.id, None)
            self._cancel_requests.discard(job.id)
            self._notify(job.id)
