"""Shared state of the running server, handed to routes as `Annotated` dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from genstudio.config import Settings
from genstudio.image.models import ModelRegistry
from genstudio.image.service import ImageStudio
from genstudio.storage.db import Store
from genstudio.storage.files import FileStore


@dataclass
class AppState:
    settings: Settings
    store: Store
    files: FileStore
    queue: Any  # LocalQueue or DistributedQueue: the interface in jobs/base.py
    registry: ModelRegistry
    images: ImageStudio


def get_state(request: Request) -> AppState:
    return request.app.state.genstudio


State = Annotated[AppState, Depends(get_state)]
