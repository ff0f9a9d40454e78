"""Health: the queue, the workers and the data disk."""

from __future__ import annotations

from fastapi import APIRouter

from genstudio import __version__
from genstudio.api.deps import State
from genstudio.api.schemas import DiskHealth, Health, QueueHealth, WorkerHealth
from genstudio.image.device import DeviceError, check_settings

router = APIRouter(prefix="/api", tags=["system"])


@router.get("/health")
def health(state: State) -> Health:
    """`status` is "ok", or "degraded" with the reasons in `problems` (a worker that is not running, a
    data disk under its free-space floor, job ends the database has not yet taken)."""
    problems: list[str] = []
    floor = int(state.settings.min_free_disk_mb * 1024 * 1024)
    disk = None
    try:
        usage = state.files.usage()
        disk = DiskHealth(path=usage.path, free_bytes=usage.free_bytes, total_bytes=usage.total_bytes,
                          min_free_bytes=floor, ok=usage.free_bytes >= floor)
        if not disk.ok:
            problems.append(f"data disk has {usage.free_bytes:,} bytes free, under {floor:,} "
                            "(GENSTUDIO_MIN_FREE_DISK_MB): new jobs are refused")
    except OSError as exc:
        problems.append(f"data disk unreadable: {exc}")
    workers: list[WorkerHealth] = []
    report = getattr(state.queue, "health", None)
    if report is not None:
        found = report()
        workers = [WorkerHealth(**w) for w in found.get("workers", [])]
        for w in workers:
            if not w.alive:
                problems.append(f"worker {w.name} is not running")
            elif w.state == "retrying":
                problems.append(f"worker {w.name} is retrying: {w.last_error}")
        if found.get("unsaved_jobs"):
            problems.append(f"{found['unsaved_jobs']} finished job(s) not yet written to the database")
    device = dtype = memory = None
    try:
        placed = check_settings(state.settings)
        device, dtype, memory = placed.device, placed.dtype, placed.memory
        image = state.studios["image"]  # the default model's own precision and memory mode
        placed = image.placement(image.registry.get(None))
        dtype, memory = placed.dtype, placed.memory
    except DeviceError as exc:
        problems.append(str(exc))
    except ValueError:  # no default model: the device's general choice stands
        pass
    return Health(
        status="degraded" if problems else "ok",
        version=__version__,
        device=device,
        dtype=dtype,
        memory=memory,
        queue=QueueHealth(
            queued=state.store.count_jobs(("queued",)),
            running=state.store.count_jobs(("running",)),
            limit=state.settings.max_queued_jobs,
        ),
        disk=disk,
        workers=workers,
        problems=problems,
    )
