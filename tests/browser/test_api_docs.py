"""The interactive API docs at /docs work offline: Swagger UI is served from the package, not a CDN."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from services import free_port, genstudio, wait_http

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


def test_docs_page_renders_every_operation_from_local_files(tmp_path: Path) -> None:
    port = free_port()
    server = genstudio(
        "serve",
        "--port",
        str(port),
        "--log-level",
        "warning",
        env={"GENSTUDIO_DATA_DIR": str(tmp_path / "data")},
        log=tmp_path / "server.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/api/health")
        html = httpx.get(f"{base}/docs").text
        assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in html and "cdn." not in html
        operations = sum(len(v) for v in httpx.get(f"{base}/openapi.json").json()["paths"].values())
        elsewhere: list[str] = []
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            page = browser.new_page()
            page.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith(base) else None)
            page.goto(f"{base}/docs")
            page.wait_for_selector(".opblock", timeout=30_000)
            assert page.locator(".opblock").count() == operations
            assert "genstudio" in page.locator(".info .title").inner_text()
            browser.close()
        assert [u for u in elsewhere if not u.startswith("data:")] == []
    finally:
        server.terminate()
        server.wait(20)
