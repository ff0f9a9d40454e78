"""Provenance check for any uploaded file: watermark and C2PA manifest."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile
from fastapi.concurrency import run_in_threadpool

from genstudio.api.deps import State
from genstudio.api.routes.uploads import read_upload

router = APIRouter(prefix="/api", tags=["provenance"])


@router.post("/verify")
async def verify(file: Annotated[UploadFile, File()], state: State) -> dict[str, Any]:
    from genstudio.provenance import verify_bytes

    data = await read_upload(file, state.settings)
    return await run_in_threadpool(verify_bytes, data, filename=None, mime=file.content_type)
