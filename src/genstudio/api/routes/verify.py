"""Provenance check for any uploaded file: watermark and C2PA manifest."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from fastapi.concurrency import run_in_threadpool

from genstudio.api.deps import State
from genstudio.api.routes.uploads import read_upload
from genstudio.api.schemas import VerifyReport

router = APIRouter(prefix="/api", tags=["provenance"])


@router.post("/verify")
async def verify(file: Annotated[UploadFile, File()], state: State) -> VerifyReport:
    data = await read_upload(file, state.settings)
    report = await run_in_threadpool(state.studios.verify, data, mime=file.content_type)
    return VerifyReport(**report)
