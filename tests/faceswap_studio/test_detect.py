"""`POST /api/faceswap/detect` (issue 11): the faces of an image or a video frame, numbered as `target_face`
numbers them (left to right), with boxes and thumbnails; errors name the field."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import cv2
import numpy as np
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


def faces_at(width: int, height: int, sizes: list[int]) -> np.ndarray:
    """A frame with the astronaut pasted so that her face is about each of `sizes` px wide, left to right."""
    canvas = np.full((height, width, 3), (60, 80, 100), np.uint8)
    x = 10
    for px in sizes:
        side = round(px / 0.22)  # her face is about 22% of the picture's width
        y = (height - side) // 2
        canvas[y:y + side, x:x + side] = astronaut_bgr(side)
        x += side + 10
    return canvas


def test_small_faces_are_found_beside_large_ones(settings: Settings) -> None:
    """Issue 11's goals: faces down to 24 px in 640x480 and 1080p frames, and every face of a multi-person 720p
    frame (a 115 px face beside a much larger one was missed before)."""
    from genstudio.faceswap.engine import MIN_FACE
    from genstudio.faceswap.landmarks import FaceLandmarker, present

    landmarker = FaceLandmarker()

    def count(frame: np.ndarray) -> int:
        return sum(present(landmarker.landmarks_from_detection(frame, d))
                   for d in landmarker.detect(frame, min_face=MIN_FACE))

    assert count(faces_at(640, 480, [24, 24, 24])) == 3
    assert count(faces_at(1920, 1080, [24, 32, 48])) == 3
    assert count(faces_at(1280, 720, [150, 115])) == 2
    assert count(faces_at(1280, 720, [150, 40, 30])) == 3
    with TestClient(create_app(settings, start_workers=False)) as c:
        asset = upload(c, png_bytes(faces_at(1280, 720, [150, 115])), "720p.png", "image/png")
        faces = c.post("/api/faceswap/detect", json={"asset": asset}).json()["faces"]
        assert len(faces) == 2 and faces[0]["box"][2] > faces[1]["box"][2]  # left: the large one


def test_a_video_search_skips_tiles_that_did_not_change() -> None:
    """With a video's memory, the small-face search does not search again a tile that is unchanged and held no
    face; a tile where a face was found is searched again, and a face that enters an empty, already searched
    region is found."""
    from genstudio.faceswap.engine import MIN_FACE
    from genstudio.faceswap.landmarks import FaceLandmarker

    landmarker = FaceLandmarker()
    calls = {"n": 0}
    raw = landmarker._detect_raw

    def counted(image: np.ndarray) -> tuple:
        calls["n"] += 1
        return raw(image)

    landmarker._detect_raw = counted  # type: ignore[method-assign]

    def search(frame: np.ndarray, memory: dict | None) -> tuple[int, int]:
        calls["n"] = 0
        found = landmarker.detect(frame, min_face=MIN_FACE, memory=memory)
        return len(found), calls["n"]

    frame = faces_at(640, 480, [24])
    memory: dict = {}
    assert search(frame, None)[0] == 1
    first = search(frame, memory)
    again = search(frame, memory)
    assert first[0] == again[0] == 1  # the face's tiles are searched again: still found
    assert again[1] < first[1] / 3  # the rest of the frame is not searched again
    # A second face enters the right half, which was empty and searched already.
    two = frame.copy()
    side = round(30 / 0.22)
    two[200:200 + side, 470:470 + side] = astronaut_bgr(side)
    assert search(two, memory)[0] == 2
    # The light changes (the camera's exposure): every tile is searched again.
    brighter = cv2.add(two, np.full_like(two, 30))
    assert search(brighter, memory) == (2, first[1])
