"""Test media for the face-swap studio, built from public-domain photos that ship in packages
(scikit-image's astronaut, NASA)."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
from PIL import Image


def astronaut_bgr(side: int = 512) -> np.ndarray:
    from skimage import data

    rgb = data.astronaut()
    return cv2.resize(np.ascontiguousarray(rgb[:, :, ::-1]), (side, side), interpolation=cv2.INTER_AREA)


def two_faces() -> np.ndarray:
    """Two faces side by side: the astronaut on the left, a slightly smaller copy on the right in grey (so
    thumbnails show which is which). The face detector misses a face much smaller than another in the same
    frame (issue 11's "find small faces"), so the two are of similar size."""
    canvas = np.full((400, 800, 3), 200, np.uint8)
    canvas[20:380, 20:380] = astronaut_bgr(360)
    canvas[40:360, 440:760] = cv2.cvtColor(cv2.cvtColor(astronaut_bgr(320), cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return canvas


def png_bytes(bgr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1])).save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(bgr: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def flat_png(side: int = 320) -> bytes:
    return png_bytes(np.full((side, side, 3), 127, np.uint8))


def make_clip(path: Path, *, frames: int = 8, fps: float = 8.0, side: int = 320) -> Path:
    """A short H.264 clip of the astronaut drifting slowly (a small pan and zoom)."""
    base = astronaut_bgr(side + 32)
    writer = imageio_ffmpeg.write_frames(
        str(path), (side, side), fps=fps, codec="libx264", quality=None,
        output_params=["-crf", "18"], macro_block_size=1,
    )
    writer.send(None)
    for i in range(frames):
        crop = base[2 * i : 2 * i + side, i : i + side]
        writer.send(np.ascontiguousarray(crop[:, :, ::-1]))
    writer.close()
    return path


def broken_mp4() -> bytes:
    """Boxes an MP4 parser accepts (ftyp, moov) around nothing a decoder can use."""
    ftyp = (16).to_bytes(4, "big") + b"ftypisom" + b"\x00\x00\x02\x00"
    moov = (24).to_bytes(4, "big") + b"moov" + b"\x00" * 16
    return ftyp + moov


def grace_hopper_jpeg() -> bytes:
    """matplotlib's sample photo of Grace Hopper (US Navy, public domain), as shipped."""
    import matplotlib.cbook as cbook

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        return fh.read()
