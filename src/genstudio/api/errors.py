"""Error answers: a bad request is a 4xx whose detail names the field and the limit."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from genstudio.image.params import LimitError
from genstudio.jobs.base import QueueFull


def field_error(field: str, message: str, status: int = 422, where: str = "body") -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"detail": [{"loc": [where, field], "msg": message, "type": "limit"}]},
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(LimitError)
    async def _limit(_req: Request, exc: LimitError) -> JSONResponse:
        return field_error(exc.field, exc.message)

    @app.exception_handler(QueueFull)
    async def _full(_req: Request, exc: QueueFull) -> JSONResponse:
        return JSONResponse(status_code=429, content={"detail": str(exc)}, headers={"Retry-After": "5"})
