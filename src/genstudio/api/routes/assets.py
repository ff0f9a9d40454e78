"""Assets: the file, its metadata, delete; and the gallery of generated results."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse

from genstudio.api.deps import State
from genstudio.storage.db import Asset

router = APIRouter(prefix="/api", tags=["assets"])


def asset_meta(a: Asset) -> dict[str, Any]:
    return {
        "id": a.id,
        "kind": a.kind,
        "mime": a.mime,
        "size": a.size,
        "sha256": a.sha256,
        "job_id": a.job_id,
        "seed": a.seed,
        "params": a.params,
        "created_at": a.created_at.isoformat(),
        "url": f"/api/assets/{a.id}",
    }


def _asset(state: State, asset_id: str) -> Asset:
    a = state.store.get_asset(asset_id) if asset_id.isalnum() else None
    if a is None:
        raise HTTPException(404, detail=f"asset_id: no asset {asset_id!r}")
    return a


@router.get("/assets/{asset_id}")
def get_asset(
    asset_id: str,
    state: State,
    download: bool = False,
    format: Annotated[str | None, Query(pattern="^(midi|wav|musicxml)$", description="melodies only")] = None,  # noqa: A002
) -> FileResponse:
    a = _asset(state, asset_id)
    path = state.files.abspath(a.path)
    if not path.is_file():
        raise HTTPException(410, detail=f"asset_id: the file of {asset_id} is gone")
    media_type = a.mime
    if format not in (None, "midi"):
        if a.mime != "audio/midi":
            raise HTTPException(422, detail=f"format: {format} is offered for melodies (MIDI), not {a.mime}")
        from genstudio.music.derive import FORMATS, derived_file
        from genstudio.music.render import RenderUnavailable

        try:
            path = derived_file(state.settings, a, path, format)
        except RenderUnavailable as exc:
            raise HTTPException(503, detail=f"format: {exc}") from None
        except ValueError as exc:
            raise HTTPException(422, detail=f"format: {exc}") from None
        media_type = FORMATS[format][0]
    elif a.mime == "audio/midi" and format == "midi":
        media_type = "audio/midi"
    filename = f"genstudio-{a.id[:12]}{path.suffix}"
    return FileResponse(
        path,
        media_type=media_type,
        filename=filename if download else None,
        headers={"Cache-Control": "private, max-age=31536000, immutable"},
    )


@router.get("/assets/{asset_id}/meta")
def get_asset_meta(asset_id: str, state: State) -> dict[str, Any]:
    return asset_meta(_asset(state, asset_id))


@router.delete("/assets/{asset_id}")
def delete_asset(asset_id: str, state: State) -> dict[str, Any]:
    a = _asset(state, asset_id)
    state.store.delete_asset(a.id)
    state.files.delete(a.path)
    if a.mime == "audio/midi":
        from genstudio.music.derive import drop_derived

        drop_derived(state.settings, a.id)
    return {"deleted": a.id}


@router.get("/gallery")
def gallery(
    state: State,
    kind: Annotated[str | None, Query(pattern="^(image|music|video)$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    cursor = None
    if before:
        ref = state.store.get_asset(before) if before.isalnum() else None
        if ref is None:
            raise HTTPException(422, detail=[{"loc": ["query", "before"], "msg": "unknown cursor", "type": "value"}])
        cursor = ref
    # One extra row tells whether another page exists, so a full last page says next: null.
    items = state.store.gallery(kind, limit + 1, cursor)
    more = len(items) > limit
    items = items[:limit]
    return {
        "items": [asset_meta(a) for a in items],
        "next": items[-1].id if more else None,
    }
