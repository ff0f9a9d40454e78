"""Errors every layer may raise: a request value beyond a configured limit (answered 4xx naming the field),
and a full data disk (answered 507)."""

from __future__ import annotations

import errno


class LimitError(ValueError):
    """A value is well-typed but beyond a configured limit; `field` names it for the 4xx answer."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFoundError(LimitError):
    """A referenced thing (an asset, a consent record) does not exist: answered 404 naming the field."""


class GoneError(LimitError):
    """A referenced asset's file is gone (deleted, or past the retention period): answered 410."""


class DiskFull(OSError):
    """The data disk has no room (ENOSPC, a quota, or SQLite's "database or disk is full"): answered 507."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_DISK_FULL_TEXTS = ("database or disk is full", "no space left on device", "disk quota exceeded", "diskfull")


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether `exc` (or what caused it) says the disk is full, whichever library raised it: an OSError
    with ENOSPC/EDQUOT, SQLite's SQLITE_FULL, PostgreSQL's DiskFull, ffmpeg's message."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, DiskFull):
            return True
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
            return True
        text = f"{type(exc).__name__} {exc}".lower()
        if any(t in text for t in _DISK_FULL_TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False
