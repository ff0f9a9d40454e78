"""Health and queue status."""

from __future__ import annotations

from fastapi import APIRouter

from genstudio import __version__
from genstudio.api.deps import State
from genstudio.api.schemas import Health

router = APIRouter(prefix="/api", tags=["system"])


@router.get("/health")
def health(state: State) -> Health:
    return Health(**{
        "status": "ok",
        "version": __version__,
        "queue": {
            "queued": state.store.count_jobs(("queued",)),
            "running": state.store.count_jobs(("running",)),
            "limit": state.settings.max_queued_jobs,
        },
    })
