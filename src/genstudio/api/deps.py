"""Shared state of the running server, handed to routes as `Annotated` dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from genstudio.api.cache import ReadCache
from genstudio.api.pool import WorkPool
from genstudio.config import Settings
from genstudio.runtime import Studios
from genstudio.storage.db import Asset, Job, Store
from genstudio.storage.files import FileStore


@dataclass
class AppState:
    settings: Settings
    store: Store
    files: FileStore
    queue: Any  # LocalQueue or DistributedQueue: the interface in jobs/base.py
    studios: Studios
    pool: WorkPool = field(default=None)  # type: ignore[assignment]  # set in __post_init__
    cache: ReadCache = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.pool is None:
            self.pool = WorkPool(self.settings)
        if self.cache is None:
            self.cache = ReadCache(self.store)

    def submit(self, studio: str, params: Any) -> Job:
        """Queue a job of `studio` with its resolved (typed) params."""
        return self.queue.submit(studio, params.model_dump(by_alias=True))


def get_state(request: Request) -> AppState:
    return request.app.state.genstudio


State = Annotated[AppState, Depends(get_state)]


def get_asset(asset_id: str, state: State) -> Asset:
    """The asset named in the path (404 when there is none; ids are server-made hex, never paths)."""
    a = state.store.get_asset(asset_id) if asset_id.isalnum() else None
    if a is None:
        raise HTTPException(404, detail=f"asset_id: no asset {asset_id!r}")
    return a


AssetRow = Annotated[Asset, Depends(get_asset)]


def asset_file(state: AppState, a: Asset) -> Path:
    """The asset's file on disk (410 when it is gone)."""
    path = state.files.abspath(a.path)
    if not path.is_file():
        raise HTTPException(410, detail=f"asset_id: the file of {a.id} is gone")
    return path
