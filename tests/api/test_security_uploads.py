"""Token auth, upload limits and type checks, queue limit, and bind refusal."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib

from fastapi.testclient import TestClient
from PIL import Image

from genstudio.api.app import create_app


def png_bytes(size: tuple[int, int] = (32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


def bomb_png(w: int, h: int) -> bytes:
    """A valid PNG header claiming a huge image (the pixels are never sent)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
    )


def test_token_required_on_every_api_route_when_set(settings) -> None:  # noqa: ANN001
    s = settings.model_copy(update={"api_token": "s3cret-token"})
    with TestClient(create_app(s)) as c:
        for method, url in [
            ("get", "/api/health"),
            ("get", "/api/styles"),
            ("post", "/api/images"),
            ("get", "/api/gallery"),
            ("get", "/openapi.json"),
            ("get", "/api/jobs/x"),
        ]:
            assert getattr(c, method)(url).status_code == 401, url
            assert getattr(c, method)(url, headers={"Authorization": "Bearer wrong"}).status_code == 401, url
        ok = c.get("/api/health", headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200 and ok.json()["status"] == "ok"
        assert c.get("/", follow_redirects=False).status_code in (200, 307)  # the UI shell needs no token


def test_serve_refuses_non_loopback_without_token(tmp_path) -> None:  # noqa: ANN001
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "genstudio.cli",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert r.returncode == 1
    assert "GENSTUDIO_API_TOKEN" in r.stderr and r.stderr.count("\n") == 1


def test_uploads_are_type_checked_and_size_limited(settings) -> None:  # noqa: ANN001
    s = settings.model_copy(update={"max_upload_bytes": 200_000, "max_image_pixels": 1000 * 1000})
    with TestClient(create_app(s)) as c:
        ok = c.post("/api/uploads", files={"file": ("../../etc/passwd", png_bytes(), "image/png")})
        assert ok.status_code == 201, ok.text
        body = ok.json()
        assert body["kind"] == "image"
        meta = c.get(f"/api/assets/{body['asset_id']}/meta").json()
        assert meta["mime"] == "image/png"
        stored = list((s.assets_dir).rglob("*"))
        assert all(p.resolve().is_relative_to(s.assets_dir) for p in stored)
        assert not (s.data_dir / "etc").exists()

        cases = [
            (b"PK\x03\x04" + b"\x00" * 100, "x.png", 415),  # a ZIP named .png
            (png_bytes()[:60], "t.png", 422),  # truncated
            (bomb_png(50_000, 50_000), "bomb.png", 413),  # decompression bomb
            (b"", "empty.png", 422),
            (b"\x00" * 300_000, "big.bin", 413),  # over the byte limit
            (b"hello\x00world", "nul\x00name.txt", 415),
        ]
        for data, name, status in cases:
            r = c.post("/api/uploads", files={"file": (name, data, "image/png")})
            assert r.status_code == status, (name, r.status_code, r.text)
            assert "file" in str(r.json()["detail"])
        assert len(list(s.assets_dir.rglob("*.*"))) == 1

        big = c.post(
            "/api/uploads", content=b"x" * 2_000_000, headers={"content-type": "multipart/form-data; boundary=x"}
        )
        assert big.status_code == 413


def test_queue_limit_answers_429_and_status_still_works(settings) -> None:  # noqa: ANN001
    s = settings.model_copy(update={"max_queued_jobs": 2})
    with TestClient(create_app(s, start_workers=False)) as c:
        ids = [
            c.post("/api/images", json={"prompt": f"p{i}", "width": 64, "height": 64}).json()["job_id"]
            for i in range(2)
        ]
        r = c.post("/api/images", json={"prompt": "one too many", "width": 64, "height": 64})
        assert r.status_code == 429 and "at most 2" in r.json()["detail"]
        assert all(c.get(f"/api/jobs/{i}").json()["status"] == "queued" for i in ids)
        assert c.get("/api/health").json()["queue"]["queued"] == 2
