"""Errors every layer may raise: a request value beyond a configured limit (answered 4xx naming the field)."""

from __future__ import annotations


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
