"""Run jobs in a child process that keeps its models loaded, so the server's event loop never waits
for the model's Python work (GIL) and a crash or OOM-kill of a job cannot take the server down.

The parent keeps all bookkeeping (rows, files, progress, cancel); the child only turns params into
output bytes. The child exits on its own when its parent disappears (SIGKILL of the server).
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing as mp
import os
import queue as queue_mod
import time
from typing import Any

from genstudio.jobs.base import JobCancelled, JobFailed, JobInterrupted, OutputFile

log = logging.getLogger(__name__)
_NO_JOB = b"-" * 32


def _child_main(factory: str, settings_json: str, tasks: Any, results: Any, cancel: Any, parent: int) -> None:
    from genstudio.config import Settings

    settings = Settings.model_validate_json(settings_json)
    if settings.job_nice and hasattr(os, "nice"):
        # The model takes every core it can; the server (status polls, pages, uploads) must still answer
        # at once: the scheduler gives this process what the server leaves.
        try:
            os.nice(settings.job_nice)
        except OSError:
            pass
    module, _, attr = factory.partition(":")
    handlers = getattr(importlib.import_module(module), attr)(settings)

    class Ctx:
        def __init__(self, job: Any) -> None:
            self.job = job
            self._last = (0.0, -1.0)

        def check_cancelled(self) -> None:
            if bytes(cancel[:]) == self.job.id.encode():
                raise JobCancelled()

        def progress(self, fraction: float, message: str | None = None) -> None:
            if os.getppid() != parent:  # the server is gone: nobody will read the result
                os._exit(0)
            now = time.monotonic()
            # At most ten messages a second: each one wakes the server and its SSE readers, and on a
            # CPU box every wake-up is time taken from the model.
            if fraction >= 1.0 or now - self._last[0] >= 0.1:
                self._last = (now, fraction)
                results.put(("progress", self.job.id, float(fraction)))
            self.check_cancelled()

        def preview(self, data: dict[str, Any]) -> None:
            results.put(("preview", self.job.id, data))

    from types import SimpleNamespace

    while True:
        try:
            task = tasks.get(timeout=1.0)
        except queue_mod.Empty:
            if os.getppid() != parent:
                return
            continue
        if task is None:
            return
        job_id, kind, params = task
        ctx = Ctx(SimpleNamespace(id=job_id, kind=kind, params=params))
        try:
            outputs = handlers[kind](ctx)
            results.put(("done", job_id, [(o.data, o.mime, o.kind, o.seed, o.params) for o in outputs]))
        except JobCancelled:
            results.put(("cancelled", job_id, None))
        except (JobFailed, ValueError) as exc:
            results.put(("failed", job_id, str(exc)))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the job with it
            log.exception("job %s failed in the worker process", job_id)
            results.put(("failed", job_id, f"{type(exc).__name__}: {exc}"))


class ProcessRunner:
    """One child process; `run(job, ctx)` blocks the calling worker thread until the job ends."""

    def __init__(self, factory: str, settings: Any) -> None:
        self.factory = factory
        self.settings = settings
        self._mp = mp.get_context("spawn")
        self._proc: Any = None
        self._aborting = False

    def _ensure(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        self._tasks = self._mp.Queue()
        self._results = self._mp.Queue()
        self._cancel = self._mp.Array("c", 32)
        self._cancel[:] = _NO_JOB
        self._proc = self._mp.Process(
            target=_child_main,
            args=(self.factory, self.settings.model_dump_json(), self._tasks, self._results, self._cancel, os.getpid()),
            name="genstudio-job-runner",
            daemon=True,
        )
        self._proc.start()

    def run(self, job: Any, ctx: Any) -> list[OutputFile]:
        self._ensure()
        self._cancel[:] = _NO_JOB
        self._tasks.put((job.id, job.kind, job.params))
        while True:
            if self._aborting:  # set by another thread, possibly before the child had even started
                self._proc.kill()
                self._proc = None
                raise JobInterrupted()
            try:
                msg, job_id, payload = self._results.get(timeout=0.5)
            except queue_mod.Empty:
                if not self._proc.is_alive():
                    code = self._proc.exitcode
                    self._proc = None
                    if self._aborting:
                        raise JobInterrupted() from None
                    raise JobFailed(f"the worker process died (exit code {code}) while running this job") from None
                try:
                    ctx.check_cancelled()
                except JobCancelled:
                    self._cancel[:] = job.id.encode()
                continue
            if job_id != job.id:  # a late message of an earlier job
                continue
            if msg == "progress":
                try:
                    ctx.progress(payload)
                except JobCancelled:
                    self._cancel[:] = job.id.encode()
            elif msg == "preview":
                if hasattr(ctx, "preview"):
                    ctx.preview(payload)
            elif msg == "done":
                return [OutputFile(data=d, mime=m, kind=k, seed=s, params=p) for d, m, k, s, p in payload]
            elif msg == "cancelled":
                raise JobCancelled()
            elif msg == "failed":
                raise JobFailed(payload)

    def abort(self) -> None:
        """Shutting down: end the child now; the job it ran goes back to the queue."""
        self._aborting = True
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()

    def stop(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._tasks.put(None)
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()
        self._proc = None
