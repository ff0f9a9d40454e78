"""Image studio routes: styles, text-to-image jobs, reading parameters back from a PNG."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Response, UploadFile

from genstudio.api.deps import State
from genstudio.api.routes.uploads import read_upload
from genstudio.api.schemas import JobAccepted
from genstudio.image.edit import preprocess_file
from genstudio.image.params import ImageRequest, PreprocessRequest, UpscaleRequest
from genstudio.image.pngmeta import read_png_params
from genstudio.image.styles import Style, load_styles

router = APIRouter(prefix="/api", tags=["image"])


@router.get("/styles")
def styles() -> list[Style]:
    return list(load_styles().values())


@router.post("/images", status_code=202)
def create_image(req: ImageRequest, state: State) -> JobAccepted:
    params = state.studios["image"].resolve(req)
    job = state.submit("image", params)
    return JobAccepted(job_id=job.id, params=params.model_dump())


@router.post("/images/upscale", status_code=202)
def upscale_image(req: UpscaleRequest, state: State) -> JobAccepted:
    """An image at `scale` times its size (Lanczos, or an upscaler model from GET /api/models?kind=upscaler),
    as a job whose result is a new gallery image."""
    params = state.studios["image"].resolve_upscale(req)
    job = state.submit("image", params)
    return JobAccepted(job_id=job.id, params=params.model_dump())


@router.post("/images/preprocess", response_class=Response,
             responses={200: {"content": {"image/png": {}}, "description": "the control image"}})
async def preprocess_image(req: PreprocessRequest, state: State) -> Response:
    """What a ControlNet preprocessor (canny, lineart, scribble, none) makes of an image: a preview of the
    control image a unit will use (at most 1024 px on its longer side)."""
    found = state.studios["image"].ctx.inputs.get(req.image, "image")
    if found.kind != "image":
        raise HTTPException(422, detail=f"image: {found.mime} is not an image")
    data = await state.pool.run("image", preprocess_file, str(found.path), req.preprocessor)
    return Response(content=data, media_type="image/png", headers={"Cache-Control": "no-store"})


def png_params(data: bytes) -> dict[str, Any]:
    try:
        return read_png_params(data)
    except RecursionError as exc:  # json.loads on a deeply nested genstudio chunk
        raise HTTPException(422, detail="file: the genstudio text chunk is nested too deeply") from exc
    except ValueError as exc:
        raise HTTPException(422, detail=str(exc)) from exc


@router.post("/images/params")
async def image_params(file: Annotated[UploadFile, File()], state: State) -> dict[str, Any]:
    """The generation parameters a PNG carries (genstudio's own chunk, or A1111's `parameters` text)."""
    data = await read_upload(file, state.settings)
    found = await state.pool.run("file", png_params, data)  # parsing in the work pool
    try:  # a JSON string in the text may escape a lone surrogate, which no answer can carry
        json.dumps(found, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise HTTPException(422, detail="file: the PNG's parameters text holds invalid Unicode") from exc
    return found
