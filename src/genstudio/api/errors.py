"""Error answers: a bad request is a 4xx whose detail names the field and the limit."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from genstudio.errors import DiskFull, GoneError, LimitError, is_disk_full
from genstudio.jobs.base import QueueFull

# No request field is nested anywhere near this deep; an echo of a deeper value is not attempted (the
# encoder recurses per level, and JSON some hundreds of levels deep would exhaust the stack: a 500).
MAX_JSON_DEPTH = 32


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


def deeper_than(value: Any, limit: int) -> bool:
    """Whether lists/dicts in `value` nest more than `limit` levels (walked without recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list | tuple):
            if depth >= limit:
                return True
            stack.extend((v, depth + 1) for v in item)
    return False


def _too_deep(loc: Any) -> dict[str, Any]:
    return {
        "type": "json_too_deep",
        "loc": list(loc),
        "msg": f"the value is nested more than {MAX_JSON_DEPTH} levels deep; at most {MAX_JSON_DEPTH} are accepted",
    }


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer, except that the echoed input may hold NaN or a lone surrogate (Python's
        # JSON parser takes both), which would make the 422 itself unencodable: a 500; and a deeply
        # nested input is named, not echoed.
        found = [
            _too_deep(e.get("loc", ())) if deeper_than(e.get("input"), MAX_JSON_DEPTH) else e for e in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": json_safe(jsonable_encoder(found))})

    @app.exception_handler(HTTPException)
    async def _http(req: Request, exc: HTTPException) -> Response:
        # Python's JSON parser gives up (RecursionError) on a body nested about a thousand levels deep, and
        # FastAPI answers any parse failure with a bare 400.
        if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
            return JSONResponse(status_code=422, content={"detail": [_too_deep(["body"])]})
        return await http_exception_handler(req, exc)

    @app.exception_handler(LimitError)
    async def _limit(_req: Request, exc: LimitError) -> JSONResponse:
        if isinstance(exc, GoneError):  # the asset's row is there, its file is not
            return JSONResponse(status_code=410, content={"detail": str(exc)})
        return field_error(exc.field, exc.message)

    async def _disk_full(req: Request, exc: Exception) -> Response:
        # 507 Insufficient Storage, saying so; any other OSError or database error stays a 500.
        if not is_disk_full(exc):
            raise exc
        text = exc.message if isinstance(exc, DiskFull) else "the data disk is full; delete assets to make room"
        return JSONResponse(status_code=507, content={"detail": text}, headers={"Retry-After": "30"})

    from sqlalchemy.exc import DBAPIError

    app.add_exception_handler(OSError, _disk_full)
    app.add_exception_handler(DBAPIError, _disk_full)

    @app.exception_handler(QueueFull)
    async def _full(_req: Request, exc: QueueFull) -> JSONResponse:
        return JSONResponse(status_code=429, content={"detail": str(exc)}, headers={"Retry-After": "5"})
