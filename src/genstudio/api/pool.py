"""Heavy request work off the server: parsing and probing uploads, verify, melody renders.

By default it runs in child processes (pebble's ProcessPool) with a time limit per task: the event loop
only moves bytes, a parser that holds the GIL cannot slow other requests, and a task past its limit is
killed with its process (and the process replaced). At most `parse_workers` tasks run at once and a few
more wait; beyond that a request is answered 503 with Retry-After instead of queueing without bound.
`GENSTUDIO_PARSE_POOL=thread` runs the same functions in threads (no time limit): for tests and
debugging.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException
from fastapi.concurrency import run_in_threadpool

from genstudio.config import Settings

log = logging.getLogger(__name__)
WAITING_PER_WORKER = 4


@dataclass
class Refused:
    """An HTTPException raised in a child, carried back as data (HTTPException does not pickle)."""

    status: int
    detail: Any


def _shielded(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except HTTPException as exc:
        return Refused(exc.status_code, exc.detail)


class WorkPool:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kind = settings.parse_pool
        self.size = settings.parse_workers
        self._pool: Any = None
        self._slots: asyncio.Semaphore | None = None

    def _ensure(self) -> Any:
        if self._pool is None:
            import pebble

            # spawn: a fork of a server with threads (the job workers, uvicorn) can inherit held locks.
            self._pool = pebble.ProcessPool(max_workers=self.size, context=mp.get_context("spawn"))
        return self._pool

    def warm(self) -> None:
        """Start the children now (they import the parsers once), so the first upload does not wait."""
        if self.kind == "process":
            self._ensure().schedule(_ready)

    async def run(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` in the pool; `what` names the request field in the errors."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size * (1 + WAITING_PER_WORKER))
        if self._slots.locked():
            raise HTTPException(
                503,
                detail=f"{what}: the server is busy checking other files; try again shortly (GENSTUDIO_PARSE_WORKERS)",
                headers={"Retry-After": "2"},
            )
        async with self._slots:
            if self.kind == "thread":
                result = await run_in_threadpool(_shielded, fn, *args)
            else:
                result = await self._in_process(what, fn, *args)
        if isinstance(result, Refused):
            raise HTTPException(result.status, detail=result.detail)
        return result

    async def _in_process(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        import pebble

        limit = self.settings.parse_timeout_s
        future = self._ensure().schedule(_shielded, args=(fn, *args), timeout=limit)
        try:
            return await asyncio.wrap_future(future)
        except FutureTimeout:
            raise HTTPException(
                422,
                detail=f"{what}: checking this file took over {limit:g} s and was stopped (GENSTUDIO_PARSE_TIMEOUT_S)",
            ) from None
        except pebble.ProcessExpired as exc:
            log.warning("a %s check killed its process (exit code %s)", what, exc.exitcode)
            raise HTTPException(422, detail=f"{what}: the file crashed the parser (exit code {exc.exitcode})") from None

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool.join(timeout=5)
            self._pool = None


def _ready() -> bool:
    import genstudio.api.routes.uploads  # noqa: F401 - the parsers, imported once per child

    return True
