"""The models every studio offers, from the studio registry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from genstudio.api.deps import State
from genstudio.api.schemas import ModelInfo
from genstudio.errors import LimitError

router = APIRouter(prefix="/api", tags=["models"])


@router.get("/models")
def models(
    state: State,
    kind: Annotated[str | None, Query(pattern="^[a-z]+$", max_length=32, description="a studio's name")] = None,
) -> list[ModelInfo]:
    if kind is not None and kind not in state.studios.names():
        raise LimitError("kind", f"unknown studio {kind!r}; one of {', '.join(state.studios.names())}")
    return [ModelInfo(**m) for m in state.studios.models(kind)]
