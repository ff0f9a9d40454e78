"""Image studio routes: styles, models, text-to-image jobs, reading parameters back from a PNG."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Query, UploadFile

from genstudio.api.deps import State
from genstudio.api.routes.uploads import read_upload
from genstudio.image.params import ImageRequest
from genstudio.image.pngmeta import read_png_params
from genstudio.image.service import resolve
from genstudio.image.styles import load_styles

router = APIRouter(prefix="/api", tags=["image"])


@router.get("/styles")
def styles() -> list[dict[str, Any]]:
    return [s.model_dump() for s in load_styles().values()]


@router.get("/models")
def models(
    state: State, kind: Annotated[str | None, Query(pattern="^(image|music|faceswap)$")] = None
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if kind in (None, "image"):
        default = state.settings.default_image_model
        out += [{**e.public(), "kind": "image", "default": e.id == default} for e in state.registry.list()]
    if kind in (None, "music"):
        from genstudio.music.service import music_model_info

        out.append(music_model_info(state.settings))
    return out


@router.post("/images", status_code=202)
def create_image(req: ImageRequest, state: State) -> dict[str, Any]:
    params = resolve(req, state.registry, state.settings)
    job = state.queue.submit("image", params.model_dump())
    return {"job_id": job.id, "params": params.model_dump()}


@router.post("/images/params")
async def image_params(file: Annotated[UploadFile, File()], state: State) -> dict[str, Any]:
    data = await read_upload(file, state.settings)
    try:
        found = read_png_params(data)
    except RecursionError as exc:  # json.loads on a deeply nested genstudio chunk
        raise HTTPException(422, detail="file: the genstudio text chunk is nested too deeply") from exc
    except ValueError as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    try:  # a JSON string in the text may escape a lone surrogate, which no answer can carry
        json.dumps(found, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise HTTPException(422, detail="file: the PNG's parameters text holds invalid Unicode") from exc
    return found
