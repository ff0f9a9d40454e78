"""Test media for the face-swap tests: public-domain faces from installed packages (scikit-image's astronaut,
NASA; matplotlib's grace_hopper, US Navy) and clips built from them. A module of its own: `conftest` names clash."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import pytest

from genstudio.faceswap.landmarks import DEFAULT_MODELS_DIR, DETECTOR_FILE, MESH_FILE

requires_models = pytest.mark.skipif(
    not ((DEFAULT_MODELS_DIR / DETECTOR_FILE).is_file() and (DEFAULT_MODELS_DIR / MESH_FILE).is_file()),
    reason="face models not fetched: run `python scripts/fetch_face_models.py`")


def astronaut_bgr() -> np.ndarray:
    from skimage.data import astronaut

    return cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR)


def grace_hopper_bgr() -> np.ndarray:
    from matplotlib import cbook

    return cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))


def place(canvas: np.ndarray, face: np.ndarray, cx: float, cy: float, size: float, angle: float = 0.0) -> np.ndarray:
    """Paste `face` (whole photo) scaled to `size` px wide, centred at (cx, cy) and rotated, onto a copy of canvas."""
    h, w = face.shape[:2]
    scale = size / w
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += np.array([cx, cy]) - np.array([w / 2, h / 2])
    out = canvas.copy()
    mask = cv2.warpAffine(np.full((h, w), 255, np.uint8), m, (canvas.shape[1], canvas.shape[0]))
    warped = cv2.warpAffine(face, m, (canvas.shape[1], canvas.shape[0]))
    out[mask > 127] = warped[mask > 127]
    return out


def background(width: int = 640, height: int = 480) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    grad = (60 + 60 * xs / width + 40 * ys / height).astype(np.uint8)
    return cv2.merge([grad, (grad * 0.9).astype(np.uint8), (grad * 0.8).astype(np.uint8)])


def write_clip(path: Path, frames: Iterable[np.ndarray], fps: float = 30.0, audio_hz: float | None = None) -> Path:
    """Encode frames (BGR) with ffmpeg into `path`; with `audio_hz`, add a sine tone as an AAC track."""
    from genstudio.faceswap.media import ffmpeg_exe

    frames = list(frames)
    h, w = frames[0].shape[:2]
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
           "-s", f"{w}x{h}", "-framerate", str(fps), "-i", "-"]
    if audio_hz:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency={audio_hz}:duration={len(frames) / fps}",
                "-c:a", "aac", "-shortest"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "12", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, input=b"".join(np.ascontiguousarray(f).tobytes() for f in frames), check=True)
    return path
