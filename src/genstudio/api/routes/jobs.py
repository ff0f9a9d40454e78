"""Jobs: status, live progress (Server-Sent Events) and cancel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from sse_starlette.sse import EventSourceResponse

from genstudio.api.deps import State
from genstudio.api.schemas import JobOut
from genstudio.storage.db import FINAL_STATUSES, Asset, Job

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


def job_json(job: Job, assets: list[Asset]) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "progress": round(job.progress, 4),
        "error": job.error,
        # Keys starting with "_" hold what only the worker needs (a studio's private inputs): never shown.
        "params": {k: v for k, v in (job.params or {}).items() if not k.startswith("_")},
        "assets": [a.id for a in assets],
        "attempts": job.attempts,
        "worker": job.worker,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def _snapshot(state: State, job_id: str) -> tuple[Job, list[Asset]]:
    snap = state.queue.snapshot(job_id)
    if snap is None:
        raise HTTPException(404, detail=f"job_id: no job {job_id!r}")
    return snap


@router.get("/{job_id}", response_model=JobOut)
async def get_job(job_id: str, state: State) -> Response:
    # Jobs in flight are answered from memory on the event loop; finished ones from the database once, then
    # from the read cache (a finished job changes only when one of its assets is deleted).
    if state.queue.in_memory(job_id):
        return Response(_job_bytes(*_snapshot(state, job_id)), media_type="application/json")
    key = ("job", job_id)
    data = state.cache.get(key)
    if data is None:
        generation = state.store.asset_generation
        job, assets = await asyncio.to_thread(_snapshot, state, job_id)
        data = _job_bytes(job, assets)
        if job.status in FINAL_STATUSES:
            state.cache.put(key, data, generation)
    return Response(data, media_type="application/json")


def _job_bytes(job: Job, assets: list[Asset]) -> bytes:
    return JobOut(**job_json(job, assets)).model_dump_json().encode()


@router.post("/{job_id}/cancel")
def cancel_job(job_id: str, state: State) -> JobOut:
    _snapshot(state, job_id)
    state.queue.cancel(job_id)
    return JobOut(**job_json(*_snapshot(state, job_id)))


@router.get("/{job_id}/events", response_class=EventSourceResponse)
async def job_events(job_id: str, request: Request, state: State) -> EventSourceResponse:
    _snapshot(state, job_id)

    async def stream() -> AsyncIterator[dict[str, str]]:
        changed = state.queue.watch(job_id)
        last: tuple[str, float] | None = None
        shown = 0  # the sequence number of the last preview sent
        latest = getattr(state.queue, "latest_preview", lambda _id: None)
        try:
            while True:
                changed.clear()
                preview = latest(job_id)
                if preview is not None and preview[0] > shown:
                    shown = preview[0]
                    yield {"event": "preview", "data": json.dumps(preview[1])}
                job, assets = (
                    _snapshot(state, job_id)
                    if state.queue.in_memory(job_id)
                    else await asyncio.to_thread(_snapshot, state, job_id)
                )
                key = (job.status, round(job.progress, 3))
                if key != last:
                    last = key
                    yield {"event": "progress", "data": json.dumps(job_json(job, assets))}
                if job.status in FINAL_STATUSES:
                    yield {"event": "end", "data": json.dumps(job_json(job, assets))}
                    return
                if await request.is_disconnected():
                    return
                try:  # woken by the worker on every change; the timeout is only a safety net
                    await asyncio.wait_for(changed.wait(), timeout=getattr(state.queue, "poll_interval", 1.0))
                except TimeoutError:
                    pass
        finally:
            state.queue.unwatch(job_id, changed)

    return EventSourceResponse(stream(), ping=10)
