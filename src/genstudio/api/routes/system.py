"""Health and queue status."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from genstudio import __version__
from genstudio.api.deps import State

router = APIRouter(prefix="/api", tags=["system"])


@router.get("/health")
def health(state: State) -> dict[str, Any]:
    return {
        "status": "ok",
        "version": __version__,
        "queue": {
            "queued": state.store.count_jobs(("queued",)),
            "running": state.store.count_jobs(("running",)),
            "limit": state.settings.max_queued_jobs,
        },
    }
