"""`POST /api/faceswap/detect` (issue 11): the faces of an image or a video frame, numbered as `target_face`
numbers them (left to right), with boxes and thumbnails; errors name the field."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import cv2
from fastapi.testclient import TestClient
from fs_media import astronaut_bgr, flat_png, png_bytes, two_faces
from PIL import Image

from genstudio.api.app import create_app
from genstudio.config import Settings


def upload(c: TestClient, data: bytes, name: str, mime: str) -> str:
    r = c.post("/api/uploads", files={"file": (name, data, mime)})
    assert r.status_code == 201, r.text
    return r.json()["asset_id"]


def test_detect_numbers_faces_left_to_right_with_thumbnails(settings: Settings, clip: Path) -> None:
    with TestClient(create_app(settings, start_workers=False)) as c:
        asset = upload(c, png_bytes(two_faces()), "two.png", "image/png")
        r = c.post("/api/faceswap/detect", json={"asset": asset})
        assert r.status_code == 200, r.text
        body = r.json()
        faces = body["faces"]
        assert [f["index"] for f in faces] == [0, 1] and body["frame"] == 0
        (x0, _y0, w0, _h0), (x1, _y1, w1, _h1) = faces[0]["box"], faces[1]["box"]
        assert x0 < 380 <= 440 <= x1 and w0 > w1  # index 0 is the left-most; the right one is smaller
        for face in faces:
            assert 0 < face["score"] <= 1
            thumb = Image.open(io.BytesIO(base64.b64decode(face["thumbnail"].split(",", 1)[1])))
            assert thumb.format == "JPEG" and max(thumb.size) <= 96
        # A video frame.
        video = upload(c, clip.read_bytes(), "clip.mp4", "video/mp4")
        r = c.post("/api/faceswap/detect", json={"asset": video, "frame": 3})
        assert r.status_code == 200 and r.json()["frame"] == 3 and len(r.json()["faces"]) == 1, r.text
        # No face: an empty list, not an error.
        flat = upload(c, flat_png(), "flat.png", "image/png")
        assert c.post("/api/faceswap/detect", json={"asset": flat}).json()["faces"] == []


def test_detect_errors_name_the_field(settings: Settings, clip: Path) -> None:
    with TestClient(create_app(settings, start_workers=False)) as c:
        video = upload(c, clip.read_bytes(), "clip.mp4", "video/mp4")
        r = c.post("/api/faceswap/detect", json={"asset": video, "frame": 10_000})
        assert r.status_code == 422 and "frame" in r.text
        image = upload(c, png_bytes(astronaut_bgr(256)), "a.png", "image/png")
        r = c.post("/api/faceswap/detect", json={"asset": image, "frame": 2})
        assert r.status_code == 422 and "frame" in r.text and "videos" in r.text
        r = c.post("/api/faceswap/detect", json={"asset": "0" * 32})
        assert r.status_code in (404, 422) and "no asset" in r.text
        _, jpg = cv2.imencode(".jpg", astronaut_bgr(128))
        assert c.post("/api/faceswap/detect", json={"asset": upload(c, jpg.tobytes(), "s.jpg", "image/jpeg")}
                      ).status_code == 200
