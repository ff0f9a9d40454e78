"""Other web pages cannot drive a default install: DNS rebinding (a foreign Host), cross-site requests and
uploads (a foreign Origin, Sec-Fetch-Site), the live WebSocket from another site, framing (CSP)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from security_helpers import Studio, png_bytes
from starlette.websockets import WebSocketDisconnect

from genstudio.api.app import create_app
from genstudio.api.security import allowed_hosts
from genstudio.config import Settings


def upload(base: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{base}/api/uploads", files={"file": ("a.png", png_bytes(), "image/png")}, headers=headers)


def test_dns_rebinding_host_refused(studio: Studio) -> None:
    # A page on evil.example whose name now resolves to 127.0.0.1 reaches the server under its own name.
    for host in ("evil.example", f"evil.example:{studio.port}", "127.0.0.1.nip.io", "testserver", "localhost.evil"):
        for method, path in (("GET", "/api/health"), ("GET", "/"), ("GET", "/api/gallery"), ("POST", "/api/images")):
            r = httpx.request(method, f"{studio.base}{path}", headers={"Host": host}, json={"prompt": "x"})
            assert r.status_code == 400, (host, path, r.status_code)
            assert "GENSTUDIO_ALLOWED_HOSTS" in r.json()["detail"] and "host:" in r.json()["detail"]
    port = studio.port
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST", "localhost."):
        assert httpx.get(f"{studio.base}/api/health", headers={"Host": host}).status_code == 200, host


def test_foreign_origin_upload_refused(studio: Studio) -> None:
    before = studio.stored_files()
    own = f"http://127.0.0.1:{studio.port}"
    # What another site's page sends with a cross-site form or fetch: its Origin, and Sec-Fetch-Site.
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},  # a sandboxed frame or a file:// page
        {"Origin": f"http://evil.example:{studio.port}"},
        {"Sec-Fetch-Site": "cross-site"},  # a browser that left Origin out
        {"Origin": own, "Sec-Fetch-Site": "cross-site"},
    ):
        r = upload(studio.base, headers)
        assert r.status_code == 403, (headers, r.status_code, r.text)
        assert r.json()["detail"].startswith("origin:"), r.text
    assert studio.stored_files() == before
    for method, path in (("POST", "/api/images"), ("DELETE", "/api/assets/x"), ("POST", "/api/jobs/x/cancel")):
        r = httpx.request(method, f"{studio.base}{path}", headers={"Origin": "http://evil.example"}, json={})
        assert r.status_code == 403, (method, path, r.status_code)
    # The studio's own pages (any loopback name and port), and clients that send no Origin, upload.
    for headers in ({"Origin": own}, {"Origin": "http://localhost:5173", "Sec-Fetch-Site": "same-site"}, {}):
        assert upload(studio.base, headers).status_code == 201, headers
    # Reading is not guarded by Origin (the browser keeps another site from reading the answer).
    assert httpx.get(f"{studio.base}/api/health", headers={"Origin": "http://evil.example"}).status_code == 200


def test_ws_foreign_origin_closed(studio: Studio) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    url = f"ws://127.0.0.1:{studio.port}/api/faceswap/live"
    for origin in ("https://evil.example", "null", f"http://evil.example:{studio.port}"):
        with connect(url, origin=origin, subprotocols=["genstudio.live"], open_timeout=10) as ws:  # type: ignore[arg-type]
            assert ws.subprotocol == "genstudio.live"  # opened, so that a page reads the code and reason
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403, origin
        assert closed.value.rcvd.reason.startswith("origin:") and "GENSTUDIO_ALLOWED_HOSTS" in closed.value.rcvd.reason
    # The studio's own page is let in: the socket waits for the first message.
    with connect(url, origin=f"http://localhost:{studio.port}", subprotocols=["genstudio.live"], open_timeout=10) as ws:  # type: ignore[arg-type]
        ws.send(json.dumps({"source": "nope"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "error"  # no consent: refused, but by the route


def test_ws_rebinding_host_closed(settings: Settings) -> None:
    # The old check compared Origin with Host: a rebinding page sends both as its own name, and passed.
    s = settings.model_copy(update={"allowed_hosts": []})
    with TestClient(create_app(s, start_workers=False), base_url="http://evil.example") as c:
        headers = {"origin": "http://evil.example"}
        with c.websocket_connect("/api/faceswap/live", headers=headers, subprotocols=["genstudio.live"]) as ws:
            with pytest.raises(WebSocketDisconnect) as refused:
                ws.receive_json()
        assert refused.value.code == 4400 and "GENSTUDIO_ALLOWED_HOSTS" in refused.value.reason


def test_docs_has_csp(studio: Studio) -> None:
    docs = httpx.get(f"{studio.base}/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    csp = docs.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and docs.headers["x-content-type-options"] == "nosniff"
    script_src = re.search(r"script-src ([^;]*)", csp)
    assert script_src and "'unsafe-inline'" not in script_src.group(1) and "'unsafe-eval'" not in script_src.group(1)
    # Swagger UI's own bootstrap script, and only it, is allowed, by its hash.
    inline = re.findall(r"<script>(.*?)</script>", docs.text, re.DOTALL)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in script_src.group(1)
    for page in ("/static/index.html", "/static/faceswap.html", "/static/music.html", "/", "/faceswap", "/music"):
        r = httpx.get(f"{studio.base}{page}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), page
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], page
        assert "script-src 'self'" in r.headers["content-security-policy"], page
        assert r.headers["x-content-type-options"] == "nosniff", page
    # nosniff on every answer: assets, JSON, errors.
    for path in ("/static/app.css", "/static/js/ui.js", "/api/health", "/api/assets/missing", "/openapi.json"):
        r = httpx.get(f"{studio.base}{path}")
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers.get("x-content-type-options", "").count("nosniff") == 1, path


def test_allowed_hosts_setting_widens_the_list(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENSTUDIO_ALLOWED_HOSTS", raising=False)
    default = Settings(data_dir=settings.data_dir)
    assert default.allowed_hosts == [] and allowed_hosts(default) == {"localhost", "127.0.0.1", "::1"}
    monkeypatch.setenv("GENSTUDIO_ALLOWED_HOSTS", " Studio.LAN:8000, 192.168.1.20 ,")
    widened = Settings(data_dir=settings.data_dir)
    assert widened.allowed_hosts == ["studio.lan", "192.168.1.20"]
    monkeypatch.setenv("GENSTUDIO_ALLOWED_HOSTS", "http://studio.lan/")
    with pytest.raises(ValueError, match="GENSTUDIO_ALLOWED_HOSTS takes host names"):
        Settings(data_dir=settings.data_dir)

    def answers(update: dict[str, Any], host: str, origin: str | None) -> int:
        app = create_app(settings.model_copy(update=update), start_workers=False)
        headers = {"origin": origin} if origin else {}
        with TestClient(app, base_url=f"http://{host}") as c:
            r = c.post("/api/uploads", files={"file": ("a.png", png_bytes(), "image/png")}, headers=headers)
            return r.status_code

    assert answers({"allowed_hosts": ["studio.lan"]}, "studio.lan:8000", "http://studio.lan:8000") == 201
    assert answers({"allowed_hosts": ["studio.lan"]}, "studio.lan:8000", "http://evil.example") == 403
    assert answers({"allowed_hosts": ["studio.lan"]}, "other.lan", None) == 400
    # The address the server binds is a name it answers to.
    bound = {"allowed_hosts": [], "host": "192.168.1.20"}
    assert answers(bound, "192.168.1.20:8000", "http://192.168.1.20:8000") == 201
    # "*": any Host; an Origin must then be the host the request was sent to (or loopback).
    assert answers({"allowed_hosts": ["*"]}, "anything.example", "http://anything.example") == 201
    assert answers({"allowed_hosts": ["*"]}, "anything.example", "http://evil.example") == 403


def test_origin_check_in_live_uses_the_allow_list(settings: Settings) -> None:
    """The live socket's own check (behind the middleware) compares with the allow-list, not with Host."""
    from genstudio.api.security import origin_refusal

    s = settings.model_copy(update={"allowed_hosts": []})
    rebinding = {"host": "evil.example:8000", "origin": "http://evil.example:8000"}
    assert (origin_refusal(rebinding, s) or "").startswith("origin:")
    assert origin_refusal({"host": "localhost:8000", "origin": "http://localhost:8000"}, s) is None
    assert origin_refusal({"host": "localhost:8000"}, s) is None
