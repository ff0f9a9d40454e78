"""Face-swap outputs as they travel (issue 12): the visible label found after scaling from 0.5x and after a
crop that cuts into it, never in unlabelled pictures; a frame of a face-swap video saved as an image read
by the one `verify` (its video frame mark); an unmarked file answers "unknown"."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from genstudio.faceswap.label import draw_label
from genstudio.faceswap.verify_media import find_label, image_label_report


def pictures() -> dict[str, np.ndarray]:
    from skimage import data

    return {n: np.ascontiguousarray(cv2.resize(getattr(data, n)(), (640, 480))[:, :, ::-1])
            for n in ("astronaut", "chelsea", "coffee", "rocket")}


def jpeg(bgr: np.ndarray, quality: int = 70) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)


# Copies of a picture labelled in the bottom-right corner; `mirror` makes the same copy of one labelled in
# the top-left (the crops then come from the other sides).
COPIES = {
    "as made": lambda x: x,
    "0.5x": lambda x: cv2.resize(x, (320, 240), interpolation=cv2.INTER_AREA),
    "0.75x": lambda x: cv2.resize(x, (480, 360), interpolation=cv2.INTER_AREA),
    "1.5x": lambda x: cv2.resize(x, (960, 720), interpolation=cv2.INTER_CUBIC),
    "crop 10% away from the label": lambda x: x[48:, 64:],
    "crop into the label": lambda x: x[:, :600],  # 40 px of its right side gone
    "0.75x as JPEG 70": lambda x: jpeg(cv2.resize(x, (480, 360), interpolation=cv2.INTER_AREA)),
}


def mirror(copy: str, x: np.ndarray) -> np.ndarray:
    return COPIES[copy](x[::-1, ::-1])[::-1, ::-1].copy()


@pytest.mark.parametrize("copy", sorted(COPIES))
def test_label_found_after_scaling_and_crops(copy: str) -> None:
    for name, bgr in pictures().items():
        found = image_label_report(COPIES[copy](draw_label(bgr, "bottom-right")))
        assert found["found"] and found["corner"] == "bottom-right", (name, copy, found)
        found = image_label_report(mirror(copy, draw_label(bgr, "top-left")))
        assert found["found"] and found["corner"] == "top-left", (name, copy, found)


def test_no_label_where_there_is_none() -> None:
    for name, bgr in pictures().items():
        for copy in ("as made", "0.5x", "1.5x"):
            found = find_label(COPIES[copy](bgr))
            assert not found["found"] and found["score"] < 0.7, (name, copy, found)


def test_a_saved_video_frame_reads_its_frame_mark_and_unmarked_is_unknown(client: TestClient) -> None:
    from genstudio.faceswap.video_watermark import embed_frame

    bgr = pictures()["astronaut"]
    frame = draw_label(embed_frame(bgr, 0), "bottom-right")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame[:, :, ::-1])).save(buf, "PNG")
    report = client.post("/api/verify", files={"file": ("frame.png", buf.getvalue(), "image/png")}).json()
    assert report["watermark"]["found"] and report["watermark"]["method"] == "video_watermark"
    assert report["label"]["found"] and report["ai_generated"] is True
    plain = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1])).save(plain, "PNG")
    report = client.post("/api/verify", files={"file": ("plain.png", plain.getvalue(), "image/png")}).json()
    assert not report["watermark"]["found"] and not report["label"]["found"]
    assert report["ai_generated"] == "unknown"
