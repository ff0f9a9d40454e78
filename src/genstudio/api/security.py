"""The guards in front of every route, as plain ASGI middleware (they run before any body is read): the
Host allow-list and the Origin check (other web pages cannot drive the server), the token, the size cap,
and the headers every response carries (nosniff; CSP on HTML)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from genstudio.config import LOOPBACK_HOSTS, Settings, host_name

Scope = dict[str, Any]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_UNBOUND = frozenset({"", "0.0.0.0", "::"})
# Swagger UI (/docs) starts from one inline script, allowed by its hash; it also sets inline styles and
# draws its icons from data: URLs. It renders no user input.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_INLINE_SCRIPT = re.compile(rb"<script(\s[^>]*)?>(.*?)</script\s*>", re.DOTALL | re.IGNORECASE)


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


def _header_values(scope: Scope, name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in scope.get("headers", []) if k == name]


def _shown(value: str, most: int) -> str:
    """An attacker-chosen header value as it may appear in an answer: ASCII, short (a close reason is at
    most 123 bytes)."""
    value = value.encode("ascii", "backslashreplace").decode("ascii")
    return value if len(value) <= most else value[: most - 3] + "..."


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """The host names requests may use, in Host and in Origin (any port): the loopback names, the address
    the server binds (unless it binds every address) and GENSTUDIO_ALLOWED_HOSTS. None: "*", any name."""
    if "*" in settings.allowed_hosts:
        return None
    names = set(LOOPBACK_HOSTS) | set(settings.allowed_hosts)
    bound = host_name(settings.host)
    if bound not in _UNBOUND:
        names.add(bound)
    return frozenset(names)


def host_refusal(host: str | None, allowed: frozenset[str] | None) -> str | None:
    """Why a request naming `host` is refused, or None. A DNS-rebinding page reaches the server under
    the attacker's own name, so only names the server is meant to answer to pass."""
    if allowed is None or host is None or host_name(host) in allowed:
        return None
    return f"host: {_shown(host, 40)!r} is not a name this server answers to (add it to GENSTUDIO_ALLOWED_HOSTS)"


def _origin_refusal(origin: str | None, host: str | None, allowed: frozenset[str] | None) -> str | None:
    if origin is None:  # not sent by a browser (curl, the CLI, a script): nothing to forge
        return None
    try:
        parts = urlsplit(origin.strip())
        name = parts.hostname.rstrip(".") if parts.scheme in ("http", "https") and parts.hostname else None
    except ValueError:
        name = None
    if name is not None:
        if allowed is not None and name in allowed:
            return None
        # With "*" there is no list to compare with: only pages of the host the request was sent to pass.
        if allowed is None and (name in LOOPBACK_HOSTS or (host is not None and name == host_name(host))):
            return None
    return f"origin: pages from {_shown(origin, 50)} may not use this server (GENSTUDIO_ALLOWED_HOSTS)"


def origin_refusal(headers: Mapping[str, str], settings: Settings) -> str | None:
    """Why a request (or WebSocket) with these headers is refused for its Origin, or None. The Origin, when
    a browser sends one, must name an allowed host: compared with the allow-list, never with the request's
    own Host header, which a DNS-rebinding page chooses."""
    return _origin_refusal(headers.get("origin"), headers.get("host"), allowed_hosts(settings))


class BrowserGuard:
    """What only another web page would send, refused before any route: a Host the server does not answer
    to (400), and a state-changing request or a WebSocket from another site's page (403; for a socket,
    close 4400 or 4403). Requests without Origin (curl, the CLI) pass: a browser always sends it."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.allowed = allowed_hosts(settings)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        hosts = _header_values(scope, b"host")
        status, refusal = 400, next(filter(None, (host_refusal(h, self.allowed) for h in hosts)), None)
        if refusal is None and (scope["type"] == "websocket" or scope.get("method") not in SAFE_METHODS):
            status = 403
            host = hosts[0] if hosts else None
            origins = _header_values(scope, b"origin")
            refusal = next(filter(None, (_origin_refusal(o, host, self.allowed) for o in origins)), None)
            fetch_site = {v.strip().lower() for v in _header_values(scope, b"sec-fetch-site")}
            if refusal is None and "cross-site" in fetch_site:
                refusal = "origin: a request from another site's page is refused (Sec-Fetch-Site: cross-site)"
        if refusal is None:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            code = 4400 if status == 400 else 4403
            return await _refuse_socket(scope, receive, send, code, refusal)
        return await _send_json(send, status, {"detail": refusal})


def _docs_csp(body: bytes) -> str:
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.group(2)).digest()).decode() + "'"
        for m in _INLINE_SCRIPT.finditer(body)
        if not re.search(rb"\ssrc\s*=", m.group(1) or b"", re.IGNORECASE)
    )
    return DOCS_CSP.format(hashes=hashes)


class SecurityHeaders:
    """`X-Content-Type-Options: nosniff` on every response; on every HTML response that sets none, a CSP
    with `frame-ancestors 'none'` (the page cannot be framed). Pages in `inline_script_paths` (our own,
    fixed: the API docs) get their inline scripts allowed by hash, computed from the page as served."""

    def __init__(self, app: Any, csp: str, inline_script_paths: tuple[str, ...] = ("/docs",)) -> None:
        self.app = app
        self.csp = csp.encode()
        self.inline_script_paths = frozenset(inline_script_paths)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        hashed = scope.get("path") in self.inline_script_paths
        held: dict[str, Any] | None = None
        chunks: list[bytes] = []

        async def with_headers(message: Any) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"").lower()
                html = ctype.startswith((b"text/html", b"application/xhtml+xml"))
                message = {**message, "headers": headers}
                if html and b"content-security-policy" not in names:
                    if hashed:
                        held = message  # the policy needs the body: sent with it
                        return
                    headers.append((b"content-security-policy", self.csp))
            elif message["type"] == "http.response.body" and held is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body, start, held = b"".join(chunks), held, None
                start["headers"].append((b"content-security-policy", _docs_csp(body).encode()))
                await send(start)
                message = {"type": "http.response.body", "body": body}
            await send(message)

        await self.app(scope, receive, with_headers)


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
        over = started = False

        async def limited_receive() -> Any:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over = True
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if over and not started:
                # The app caught the cut and answers (FastAPI makes any error while reading a body a 400):
                # the answer is the 413 below.
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            pass
        if over and not started:
            await _send_json(send, 413, {"detail": self._msg()})

    def _msg(self) -> str:
        return f"file: request body larger than {self.max_bytes} bytes (GENSTUDIO_MAX_UPLOAD_BYTES)"
