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


def box(kind: bytes, payload: bytes = b"") -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


def test_hostile_media_uploads(settings) -> None:  # noqa: ANN001
    with TestClient(create_app(settings, start_workers=False)) as c:
        mp4 = box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2") + box(b"moov", box(b"mvhd", b"\x00" * 100))
        # One track, one note (C4 for a quarter at 96 ticks per quarter), end of track.
        events = b"\x00\x90\x3c\x40" + b"\x60\x80\x3c\x00" + b"\x00\xff\x2f\x00"
        midi = (
            b"MThd"
            + (6).to_bytes(4, "big")
            + b"\x00\x00\x00\x01\x00\x60"
            + b"MTrk"
            + len(events).to_bytes(4, "big")
            + events
        )
        assert c.post("/api/uploads", files={"file": ("v.mp4", mp4, "video/mp4")}).json()["kind"] == "video"
        assert c.post("/api/uploads", files={"file": ("m.mid", midi, "audio/midi")}).json()["kind"] == "midi"
        cases = [
            (mp4 + b"\xde\xad\xbe\xef" * 50, "garbage after the boxes"),
            (mp4[:-20], "truncated"),
            (box(b"ftyp", b"isom\x00\x00\x02\x00") + b"\x00" * 64, "no moov"),
            (midi[:-2], "truncated midi"),
            (midi + b"junk-junk", "garbage after midi"),
        ]
        for data, why in cases:
            r = c.post("/api/uploads", files={"file": ("x.mp4", data, "video/mp4")})
            assert r.status_code == 422, (why, r.text)
            assert r.json()["detail"].startswith("file: ")
        for name in ("/etc/passwd", "..\\..\\boot.ini", "a\x00b.png", "C:\\x.png", "../" * 40 + "x.png"):
            r = c.post("/api/uploads", files={"file": (name, png_bytes(), "image/png")})
            assert r.status_code == 201, (name, r.text)
        stored = [p for p in settings.data_dir.rglob("*") if p.is_file() and p.suffix in (".png", ".mp4", ".mid")]
        assert len(stored) == 7 and all(p.parent.parent == settings.assets_dir for p in stored)


def test_huge_body_refused_before_reading(settings) -> None:  # noqa: ANN001
    with TestClient(create_app(settings, start_workers=False)) as c:
        # Content-Length of 1 GB with no body sent: the answer comes at once, nothing is read or stored.
        r = c.post(
            "/api/uploads",
            headers={"content-length": str(1 << 30), "content-type": "multipart/form-data; b=x"},
            content=b"",
        )
        assert r.status_code == 413 and "GENSTUDIO_MAX_UPLOAD_BYTES" in r.json()["detail"]


def test_every_api_route_refuses_missing_or_wrong_token(settings) -> None:  # noqa: ANN001
    s = settings.model_copy(update={"api_token": "tok-123"})
    app = create_app(s, start_workers=False)
    with TestClient(app) as c:
        routes = [
            (method, path.replace("{job_id}", "x").replace("{asset_id}", "x"))
            for path, ops in app.openapi()["paths"].items()
            if path.startswith("/api")
            for method in ops
        ]
        assert len(routes) >= 14
        for method, path in routes:
            for headers in ({}, {"Authorization": "Bearer tok-12"}, {"Authorization": "Basic tok-123"}):
                r = c.request(method, path, headers=headers)
                assert r.status_code == 401, (method, path, headers, r.status_code)
        assert c.get("/api/health", headers={"Authorization": "Bearer tok-123"}).status_code == 200
