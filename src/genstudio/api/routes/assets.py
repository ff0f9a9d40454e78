"""Assets: the file, its metadata, delete; and the gallery of generated results."""

from __future__ import annotations

import asyncio
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse, Response

from genstudio.api.deps import AppState, AssetRow, State, asset_file
from genstudio.api.schemas import AssetMeta, Deleted, GalleryPage
from genstudio.config import Settings
from genstudio.errors import is_disk_full
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
async def get_asset(
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
        from genstudio.music.derive import FORMATS

        # Rendered once, then served from the cache; the render (MIDI parsing, FluidSynth) in the work pool.
        path = Path(await state.pool.run("format", derive, state.settings.model_dump_json(), a.id, a.params, str(path),
                                         format))
        media_type = FORMATS[format][0]
    filename = f"genstudio-{a.id[:12]}{path.suffix}"
    return FileResponse(
        path,
        media_type=media_type,
        filename=filename if download else None,
        headers={"Cache-Control": "private, max-age=31536000, immutable"},
    )


def derive(settings_json: str, asset_id: str, params: dict[str, Any] | None, midi_path: str, fmt: str) -> str:
    """The cached `fmt` file of a melody (rendered when first asked for); 503/422 naming `format`."""
    from genstudio.music.derive import derived_file
    from genstudio.music.render import RenderUnavailable

    settings = Settings.model_validate_json(settings_json)
    try:
        melody = Asset(id=asset_id, kind="music", mime="audio/midi", path="", params=params or {})
        return str(derived_file(settings, melody, Path(midi_path), fmt, stage=_stage(settings_json)))
    except RenderUnavailable as exc:
        raise HTTPException(503, detail=f"format: {exc}") from None
    except ValueError as exc:
        raise HTTPException(422, detail=f"format: {exc}") from None


@lru_cache(maxsize=4)
def _stage(settings_json: str) -> Any:
    from genstudio.runtime import make_stage

    return make_stage(Settings.model_validate_json(settings_json))


@router.get("/assets/{asset_id}/meta")
def get_asset_meta(a: AssetRow) -> AssetMeta:
    return asset_meta(a)


@router.delete("/assets/{asset_id}")
def delete_asset(a: AssetRow, state: State) -> Deleted:
    """Works on a full disk too: when the database cannot write (SQLite needs room for its journal), the
    file goes first, which makes that room, and the row is deleted after."""
    try:
        state.store.delete_asset(a.id)
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        state.files.delete(a.path)
        state.store.delete_asset(a.id)
    state.files.delete(a.path)
    if a.mime == "audio/midi":
        from genstudio.music.derive import drop_derived

        drop_derived(state.settings, a.id)
    return Deleted(deleted=a.id)


@router.get("/gallery", response_model=GalleryPage)
async def gallery(
    state: State,
    kind: Annotated[str | None, Query(pattern="^(image|music|video)$", description="the media")] = None,
    studio: Annotated[str | None, Query(pattern="^[a-z]+$", max_length=32, description="the studio")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Generated results, newest first, filtered on the server by media kind and/or studio."""
    if studio is not None and studio not in state.studios.names():
        raise HTTPException(422, detail=[{"loc": ["query", "studio"], "msg": f"unknown studio {studio!r}",
                                          "type": "value"}])
    # Pages are kept (as JSON) until an asset changes: a poll of an unchanged gallery does no query.
    key = ("gallery", kind, studio, limit, before)
    data = state.cache.get(key)
    if data is None:
        generation = state.store.asset_generation
        data = await asyncio.to_thread(_gallery_page, state, kind, studio, limit, before)
        state.cache.put(key, data, generation)
    return Response(data, media_type="application/json")


def _gallery_page(state: AppState, kind: str | None, studio: str | None, limit: int, before: str | None) -> bytes:
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
    page = GalleryPage(items=[asset_meta(a) for a in items], next=items[-1].id if more else None)
    return page.model_dump_json().encode()
