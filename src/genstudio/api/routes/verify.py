"""Provenance check for any uploaded file: watermark and C2PA manifest."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile

from genstudio.api.deps import State
from genstudio.api.routes.uploads import read_upload
from genstudio.api.schemas import VerifyReport
from genstudio.config import Settings

router = APIRouter(prefix="/api", tags=["provenance"])


@router.post("/verify")
async def verify(file: Annotated[UploadFile, File()], state: State) -> VerifyReport:
    data = await read_upload(file, state.settings)
    report = await state.pool.run("file", verify_file, state.settings.model_dump_json(), data, file.content_type)
    return VerifyReport(**report)


def verify_file(settings_json: str, data: bytes, mime: str | None) -> dict[str, Any]:
    """The report, with every studio's checks (run in the work pool: settings travel as JSON)."""
    return _studios(settings_json).verify(data, mime=mime)


@lru_cache(maxsize=4)
def _studios(settings_json: str) -> Any:
    from genstudio import runtime

    return runtime.Studios(runtime.context(Settings.model_validate_json(settings_json)))
