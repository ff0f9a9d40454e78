"""Error answers: a bad request is a 4xx whose detail names the field and the limit."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from genstudio.image.params import LimitError
from genstudio.jobs.base import QueueFull


def field_error(field: str, message: str, status: int = 422, where: str = "body") -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"detail": [{"loc": [where, field], "msg": message, "type": "limit"}]},
    )


def json_safe(value: Any) -> Any:
    """`value` with what JSON text cannot carry made readable: NaN/Infinity become strings, lone
    surrogates (valid JSON escapes, but not Unicode) become backslash escapes. Everything else as is."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer, except that the echoed input may hold NaN or a lone surrogate (Python's
        # JSON parser takes both), which would make the 422 itself unencodable: a 500.
        return JSONResponse(status_code=422, content={"detail": json_safe(jsonable_encoder(exc.errors()))})

    @app.exception_handler(LimitError)
    async def _limit(_req: Request, exc: LimitError) -> JSONResponse:
        return field_error(exc.field, exc.message)

    @app.exception_handler(QueueFull)
    async def _full(_req: Request, exc: QueueFull) -> JSONResponse:
        return JSONResponse(status_code=429, content={"detail": str(exc)}, headers={"Retry-After": "5"})
