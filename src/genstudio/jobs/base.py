"""The queue interface every backend implements (embedded local queue now, distributed later)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from genstudio.storage.db import Asset, Job


class QueueFull(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"queue is full: at most {limit} jobs may wait or run (GENSTUDIO_MAX_QUEUED_JOBS)")
        self.limit = limit


class JobCancelled(Exception):
    """Raised inside a running job when a cancel was requested; the worker marks it cancelled."""


class JobInterrupted(Exception):
    """The server is shutting down mid-job: the job goes back to the queue, untouched."""


class JobFailed(Exception):
    """A job ended for a reason worth showing the user as is."""


@dataclass
class OutputFile:
    data: bytes
    mime: str
    kind: str
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    # What the provenance stage writes into the file (provenance.stage.Seal); None once sealed.
    seal: Any = None


class JobContext(Protocol):
    job: Job

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report progress in [0, 1]; raises JobCancelled when a cancel is pending."""

    def check_cancelled(self) -> None: ...

    # Optional (job contexts may lack it: distributed workers): a live preview for the job's SSE readers,
    # {"step", "steps", "image": data URL}. Latest one wins; never stored.
    # def preview(self, data: dict[str, Any]) -> None: ...


# A handler turns a job's params into output files; the queue writes them (atomically) and their rows.
Handler = Callable[[JobContext], list[OutputFile]]


class JobQueue(Protocol):
    def register(self, kind: str, handler: Handler) -> None: ...

    def submit(self, kind: str, params: dict[str, Any]) -> Job: ...

    def cancel(self, job_id: str) -> Job | None: ...

    def snapshot(self, job_id: str) -> tuple[Job, list[Asset]] | None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...
