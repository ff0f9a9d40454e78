"""Uploads: size-limited, type-checked by content (never by name or declared type), stored under our name."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Query, UploadFile
from PIL import Image

from genstudio.api.deps import State
from genstudio.api.schemas import UploadItem, UploadOut, UploadPage
from genstudio.config import Settings
from genstudio.storage.db import Asset, new_id
from genstudio.storage.sniff import sniff

router = APIRouter(prefix="/api", tags=["uploads"])
_SAFE_NAME = re.compile(r"[^\w. -]+")


def check_video(data: bytes, s: Settings, field: str = "file") -> None:
    """A WebM, Matroska or AVI upload must be a video ffmpeg can read (it is probed from a temporary
    file in the data dir, removed at once); MP4 and MOV get the box walk instead."""
    import tempfile

    from genstudio.faceswap.media import probe

    s.data_dir.joinpath("tmp").mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=s.data_dir / "tmp", prefix="probe-", suffix=".video") as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            probe(Path(tmp.name))
        except ValueError:
            raise HTTPException(422, detail=f"{field}: not a readable video (ffmpeg found no video stream)") from None


def check_image(data: bytes, s: Settings, field: str = "file") -> None:
    """Reject truncated images and decompression bombs before anything is written."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > s.max_image_pixels:
                raise HTTPException(
                    413,
                    detail=f"{field}: image of {w}x{h} pixels is over the limit of "
                    f"{s.max_image_pixels} pixels (GENSTUDIO_MAX_IMAGE_PIXELS)",
                )
            im.verify()
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except HTTPException:
        raise
    except Image.DecompressionBombError as exc:
        raise HTTPException(
            413,
            detail=f"{field}: image has too many pixels (decompression bomb); limit "
            f"{s.max_image_pixels} pixels (GENSTUDIO_MAX_IMAGE_PIXELS)",
        ) from exc
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for broken files
        raise HTTPException(422, detail=f"{field}: not a valid image ({type(exc).__name__})") from exc


def check_mp4(data: bytes, field: str = "file") -> None:
    """Walk the top-level ISO-BMFF boxes: every size must fit the file, and ftyp + moov must be there.

    Decoding is the video studio's job; this refuses truncated or padded files and garbage after
    a valid header before anything is stored."""
    pos, seen = 0, set()
    while pos < len(data):
        if len(data) - pos < 8:
            raise HTTPException(422, detail=f"{field}: MP4 ends inside a box header at byte {pos}")
        size = int.from_bytes(data[pos : pos + 4], "big")
        box = data[pos + 4 : pos + 8]
        header = 8
        if size == 1:
            if len(data) - pos < 16:
                raise HTTPException(422, detail=f"{field}: MP4 box at byte {pos} is truncated")
            size, header = int.from_bytes(data[pos + 8 : pos + 16], "big"), 16
        elif size == 0:
            size = len(data) - pos  # "to the end of the file"
        if size < header or pos + size > len(data) or not all(32 <= c < 127 for c in box):
            raise HTTPException(422, detail=f"{field}: not a valid MP4 (bad box at byte {pos})")
        seen.add(box)
        pos += size
    if b"ftyp" not in seen or b"moov" not in seen:
        raise HTTPException(
            422, detail=f"{field}: not a complete MP4 (no {'ftyp' if b'ftyp' not in seen else 'moov'} box)"
        )


def check_midi(data: bytes, field: str = "file") -> None:
    """A MIDI file is a header chunk and track chunks, each with a length that fits the file."""
    pos = 0
    while pos < len(data):
        if len(data) - pos < 8:
            raise HTTPException(422, detail=f"{field}: MIDI ends inside a chunk header")
        length = int.from_bytes(data[pos + 4 : pos + 8], "big")
        if data[pos : pos + 4] not in (b"MThd", b"MTrk") or pos + 8 + length > len(data):
            raise HTTPException(422, detail=f"{field}: not a valid MIDI file (bad chunk at byte {pos})")
        pos += 8 + length


async def read_upload(file: UploadFile, s: Settings, field: str = "file") -> bytes:
    data = await file.read(s.max_upload_bytes + 1)
    if len(data) > s.max_upload_bytes:
        raise HTTPException(413, detail=f"{field}: larger than {s.max_upload_bytes} bytes (GENSTUDIO_MAX_UPLOAD_BYTES)")
    if not data:
        raise HTTPException(422, detail=f"{field}: empty file")
    return data


def display_name(name: str | None) -> str | None:
    """The user's file name, for display only: no directories, no control characters."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1].replace("\x00", "")
    return _SAFE_NAME.sub("_", base)[:120] or None


def check_upload(data: bytes, kind: str, mime: str, s: Settings) -> dict[str, Any] | None:
    """Every content check of an upload (blocking: call it from a worker thread); the melody of a MIDI."""
    if kind == "image":
        check_image(data, s)
    elif mime in ("video/mp4", "video/quicktime"):
        check_mp4(data)
    elif kind == "video":
        check_video(data, s)
    if kind == "midi":
        check_midi(data)
        return midi_melody(data, s)
    return None


@router.post("/uploads", status_code=201, response_model_exclude_none=True)
async def upload(file: Annotated[UploadFile, File()], state: State) -> UploadOut:
    s = state.settings
    data = await read_upload(file, s)
    sniffed = sniff(data)
    if sniffed is None:
        raise HTTPException(
            415, detail="file: unsupported type; accepted: PNG, JPEG, WebP images, MIDI, MP4/MOV/WebM/MKV/AVI video"
        )
    kind, mime = sniffed
    # Parsing and probing run in the work pool (child processes, time-limited): the loop only moves bytes.
    melody = await state.pool.run("file", check_upload, data, kind, mime, s)
    asset_id = new_id()
    rel = state.files.relpath_for(asset_id, mime)
    size, digest = state.files.write_atomic(rel, data)
    try:
        state.store.add_asset(
            Asset(
                id=asset_id,
                kind="upload",
                mime=mime,
                path=rel,
                size=size,
                sha256=digest,
                original_name=display_name(file.filename),
                params={"upload_kind": kind},
            )
        )
    except BaseException:
        state.files.delete(rel)
        raise
    answer = UploadOut(asset_id=asset_id, kind=kind, mime=mime, size=size, sha256=digest)
    if melody is not None:
        answer.melody = melody
    return answer


@router.get("/uploads")
def list_uploads(
    state: State,
    kind: Annotated[str | None, Query(pattern="^(image|video|midi)$", description="the upload kind")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[str | None, Query(max_length=64)] = None,
) -> UploadPage:
    """Uploaded files, newest first (what a page lists again after a reload)."""
    cursor = None
    if before:
        cursor = state.store.get_asset(before) if before.isalnum() else None
        if cursor is None:
            raise HTTPException(422, detail=[{"loc": ["query", "before"], "msg": "unknown cursor", "type": "value"}])
    rows = state.store.uploads(kind, limit + 1, cursor)
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        UploadItem(
            asset_id=a.id,
            name=a.original_name,
            kind=str((a.params or {}).get("upload_kind") or "file"),
            mime=a.mime,
            size=a.size,
            created_at=a.created_at.isoformat() if hasattr(a.created_at, "isoformat") else str(a.created_at),
        )
        for a in rows
    ]
    return UploadPage(items=items, next=rows[-1].id if more else None)


def melody_summary(ex: Any) -> dict[str, Any]:
    """What the page shows of an extracted melody line: its track, size, the notes themselves (16th grid,
    [pitch, start, end]) and what taking it dropped."""
    return {
        "track": ex.track,
        "tracks": len(ex.tracks),
        "bars": ex.bars,
        "notes": len(ex.notes),
        "note_list": [[n.pitch, n.start, n.end] for n in ex.notes],
        "tempo": round(ex.tempo, 3),
        "dropped": ex.dropped,
        "summary": ex.summary(),
    }


def midi_melody(data: bytes, s: Settings, field: str = "file") -> dict[str, Any]:
    """A MIDI upload must hold a melody line: what it is and what taking it drops (422 otherwise)."""
    from genstudio.music.render import MidiTooLarge, check_midi_size, extract_melody

    try:  # the caps first, from one pass over the bytes: pretty_midi would hold every note
        check_midi_size(data, max_notes=s.max_midi_notes, max_seconds=s.max_midi_seconds)
    except MidiTooLarge as exc:
        raise HTTPException(413, detail=f"{field}: {exc}") from None
    except ValueError as exc:
        raise HTTPException(422, detail=f"{field}: not a readable MIDI file ({exc})") from None
    try:
        ex = extract_melody(data, max_bars=s.max_bars)
    except ValueError as exc:
        raise HTTPException(422, detail=f"{field}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 -- a hostile file can break the MIDI parser in many ways
        raise HTTPException(422, detail=f"{field}: not a readable MIDI file ({type(exc).__name__})") from None
    return melody_summary(ex)
