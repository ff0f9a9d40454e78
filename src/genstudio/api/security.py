"""Token check and request-size cap, as plain ASGI middleware (they run before any body is read)."""

from __future__ import annotations

import hmac
import json
from typing import Any

Scope = dict[str, Any]


async def _send_json(
    send: Any, status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _refuse_socket(scope: Scope, receive: Any, send: Any, code: int, reason: str) -> None:
    """Accept, then close with `code`: a close before the accept reaches a browser as a bare HTTP 403, one
    after it as a close event with the code and reason. The app never sees the connection."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    offered = [p.strip() for h, v in scope.get("headers", []) if h == b"sec-websocket-protocol" for p in v.split(b",")]
    # A browser that offered subprotocols drops a connection that names none: echo one, never the token.
    names = [p.decode("latin-1") for p in offered if p and not p.startswith(b"bearer.")]
    echo = "genstudio.live" if "genstudio.live" in names else next(iter(names), None)
    await send({"type": "websocket.accept", "subprotocol": echo})
    await send({"type": "websocket.close", "code": code, "reason": reason})


class TokenAuth:
    """Every /api route needs `Authorization: Bearer TOKEN` when a token is configured."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if self.token is None or scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if not (path.startswith("/api") or path in ("/openapi.json", "/docs")):
            return await self.app(scope, receive, send)
        supplied = b""
        for k, v in scope.get("headers", []):
            if k == b"authorization" and v[:7].lower() == b"bearer ":
                supplied = v[7:].strip()
            elif k == b"sec-websocket-protocol" and scope["type"] == "websocket" and not supplied:
                # A browser's WebSocket cannot send headers; it offers the token as a subprotocol
                # "bearer.TOKEN" beside the real one (the server never echoes it back).
                for offered in v.split(b","):
                    if offered.strip().startswith(b"bearer."):
                        supplied = offered.strip()[7:]
        if not hmac.compare_digest(supplied, self.token):
            if scope["type"] == "websocket":
                return await _refuse_socket(scope, receive, send, 4401, "token: missing or wrong API token")
            return await _send_json(
                send,
                401,
                {"detail": "missing or wrong API token (Authorization: Bearer ...)"},
                [(b"www-authenticate", b"Bearer")],
            )
        return await self.app(scope, receive, send)


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Refuse bodies over the limit from Content-Length at once, and stop reading chunked ones at it."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    length = int(v)
                except ValueError:
                    return await _send_json(send, 400, {"detail": "bad Content-Length"})
                if length > self.max_bytes:
                    return await _send_json(send, 413, {"detail": self._msg()})
        seen = 0
        started = False

        async def limited_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _send_json(send, 413, {"detail": self._msg()})

    def _msg(self) -> str:
        return f"file: request body larger than {self.max_bytes} bytes (GENSTUDIO_MAX_UPLOAD_BYTES)"
