"""Assets: the file, its metadata, delete; and the gallery of generated results."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse

from genstudio.api.deps import AssetRow, State, asset_file
from genstudio.api.schemas import AssetMeta, Deleted, GalleryPage
from genstudio.storage.db import Asset

router = APIRouter(prefix="/api", tags=["assets"])


def asset_meta(a: Asset) -> AssetMeta:
    return AssetMeta(
        id=a.id,
        kind=a.kind,
        studio=a.studio,
        mime=a.mime,
        size=a.size,
        sha256=a.sha256,
        job_id=a.job_id,
        seed=a.seed,
        params=a.params or {},
        created_at=a.created_at.isoformat(),
        url=f"/api/assets/{a.id}",
    )


@router.get("/assets/{asset_id}", response_class=FileResponse)
def get_asset(
    a: AssetRow,
    state: State,
    download: bool = False,
    format: Annotated[str | None, Query(pattern="^(midi|wav|musicxml)$", description="melodies only")] = None,  # noqa: A002
) -> FileResponse:
    path = asset_file(state, a)
    media_type = a.mime
    if format not in (None, "midi"):
        if a.mime != "audio/midi":
            raise HTTPException(422, detail=f"format: {format} is offered for melodies (MIDI), not {a.mime}")
        from genstudio.music.derive import FORMATS, derived_file
        from genstudio.music.render import RenderUnavailable

        try:
            path = derived_file(state.settings, a, path, format, stage=state.studios.ctx.stage)
        except RenderUnavailable as exc:
            raise HTTPException(503, detail=f"format: {exc}") from None
        except ValueError as exc:
            raise HTTPException(422, detail=f"format: {exc}") from None
        media_type = FORMATS[format][0]
    filename = f"genstudio-{a.id[:12]}{path.suffix}"
    return FileResponse(
        path,
        media_type=media_type,
        filename=filename if download else None,
        headers={"Cache-Control": "private, max-age=31536000, immutable"},
    )


@router.get("/assets/{asset_id}/meta")
def get_asset_meta(a: AssetRow) -> AssetMeta:
    return asset_meta(a)


@router.delete("/assets/{asset_id}")
def delete_asset(a: AssetRow, state: State) -> Deleted:
    state.store.delete_asset(a.id)
    state.files.delete(a.path)
    if a.mime == "audio/midi":
        from genstudio.music.derive import drop_derived

        drop_derived(state.settings, a.id)
    return Deleted(deleted=a.id)


@router.get("/gallery")
def gallery(
    state: State,
    kind: Annotated[str | None, Query(pattern="^(image|music|video)$", description="the media")] = None,
    studio: Annotated[str | None, Query(pattern="^[a-z]+$", max_length=32, description="the studio")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[str | None, Query(max_length=64)] = None,
) -> GalleryPage:
    """Generated results, newest first, filtered on the server by media kind and/or studio."""
    if studio is not None and studio not in state.studios.names():
        raise HTTPException(422, detail=[{"loc": ["query", "studio"], "msg": f"unknown studio {studio!r}",
                                          "type": "value"}])
    cursor = None
    if before:
        ref = state.store.get_asset(before) if before.isalnum() else None
        if ref is None:
            raise HTTPException(422, detail=[{"loc": ["query", "before"], "msg": "unknown cursor", "type": "value"}])
        cursor = ref
    # One extra row tells whether another page exists, so a full last page says next: null.
    items = state.store.gallery(kind, limit + 1, cursor, studio=studio)
    more = len(items) > limit
    items = items[:limit]
    return GalleryPage(items=[asset_meta(a) for a in items], next=items[-1].id if more else None)
