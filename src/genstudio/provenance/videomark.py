"""The image watermark (`syncmark`) on video frames: every frame carries the same id, so a copy of the
video, a frame saved as a picture or a screenshot of the player is read by the one reader for stills.

Embedding is the image mark's, made cheap for frames: the tiled field is built once per frame size, the
change is computed on the luminance only and added to the three colour channels alike (adding d to B, G
and R adds d to the luma and nothing to the chroma), about 3 ms per 640x480 frame. Video marks are a
little stronger than image marks (VIDEO_PSNR): H.264 keeps less of a frame than PNG or a good JPEG.

Reading a video: the mean luminance of its first frames (the mark stands still while the content moves,
so averaging keeps the mark and blurs the content), then each of its first key frames on their own
(intra-coded frames keep the mark far better than predicted ones after a re-encode). Each is read with
the image reader's full search (scale, crop, offset)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from genstudio.provenance import syncmark

METHOD = syncmark.METHOD
VIDEO_PSNR = 40.5  # dB per frame (image marks: syncmark.TARGET_PSNR); the floor is 40
READ_SIDE = 1280  # frames wider or taller than this are read downscaled (the mark survives down to 0.45x)


class FrameMarker:
    """Marks frames with one id. One instance per video (or live session); frames may change size."""

    def __init__(self, ident: bytes, psnr: float = VIDEO_PSNR) -> None:
        if len(ident) != syncmark.ID_BITS // 8:
            raise ValueError(f"a mark id is {syncmark.ID_BITS // 8} bytes, got {len(ident)}")
        self.ident = bytes(ident)
        self.psnr = psnr
        self._field: np.ndarray | None = None
        self._squares = 0.0  # sum of squared luma changes, for the PSNR actually spent
        self._pixels = 0

    def _field_for(self, height: int, width: int) -> np.ndarray:
        if self._field is None or self._field.shape != (height, width):
            self._field = syncmark.mark_field(self.ident, height, width)
        return self._field

    def embed(self, frame_bgr: np.ndarray) -> np.ndarray:
        """A marked copy of `frame_bgr` (HxWx3 uint8); frames under syncmark.MIN_SIDE pass unchanged."""
        h, w = frame_bgr.shape[:2]
        if not syncmark.can_mark(w, h):
            return frame_bgr
        y = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        delta = self._delta(y, self._field_for(h, w))
        self._squares += float(cv2.norm(delta, cv2.NORM_L2SQR))
        self._pixels += delta.size
        return cv2.add(frame_bgr, cv2.merge([delta, delta, delta]), dtype=cv2.CV_8U)

    def _delta(self, y: np.ndarray, field: np.ndarray) -> np.ndarray:
        """syncmark.shaped's weighting computed at half size (the weight is smooth; this is 2x faster), then
        rounded to whole levels, the gain lowered when the rounding overshot the target PSNR (rounding small
        changes to zero can also leave it a little under the target, a cost lower than allowed)."""
        h, w = y.shape
        small = cv2.resize(y, (w // 2, h // 2), interpolation=cv2.INTER_AREA).astype(np.float32)
        mean = cv2.blur(small, (5, 5))
        activity = cv2.sqrt(cv2.max(cv2.blur(small * small, (5, 5)) - mean * mean, 0.0))
        weight = np.clip(activity / 6.0, 0.35, 2.5) * np.clip(np.minimum(small, 255.0 - small) / 12.0, 0.0, 1.0)
        target = 255.0 / 10 ** (self.psnr / 20)
        gain = target / max(float(cv2.norm(weight)) / np.sqrt(weight.size), 1e-6)  # the field has unit power
        weight = cv2.resize(weight, (w, h), interpolation=cv2.INTER_LINEAR)
        for _ in range(3):  # one multiply, rounded to int16 by OpenCV; the gain lowered if rounding overshot
            delta = cv2.multiply(field, weight, scale=gain, dtype=cv2.CV_16S)
            rms = float(cv2.norm(delta)) / np.sqrt(delta.size)
            if rms <= 1.01 * target:
                break
            gain *= 0.99 * target / rms
        return delta

    @property
    def psnr_db(self) -> float | None:
        """The luminance PSNR the mark cost over the frames marked so far (before 8-bit clipping)."""
        if not self._pixels:
            return None
        mse = self._squares / self._pixels
        return round(float(10 * np.log10(255.0**2 / mse)), 2) if mse > 0 else None


@dataclass
class VideoReading:
    reading: syncmark.Reading
    source: str  # which look found it (or came closest): "mean of N frames" or "key frame K"
    looks: int  # how many pictures were read

    @property
    def found(self) -> bool:
        return self.reading.found

    def report(self) -> dict:
        r = self.reading
        out = {"found": r.found, "method": METHOD, "payload": r.ident.hex() if r.found and r.ident else None,
               "bit_errors": r.corrected if r.found else None, "confidence": round(r.confidence, 4),
               "sync_z": round(r.z, 1), "read_from": self.source, "looks": self.looks}
        if r.found:
            out["scale"] = round(r.scale, 3)
        return out


def _work(y: np.ndarray) -> tuple[np.ndarray, float]:
    h, w = y.shape
    shrink = min(1.0, READ_SIDE / max(h, w))
    if shrink == 1.0:
        return y, 1.0
    return cv2.resize(y, (round(w * shrink), round(h * shrink)), interpolation=cv2.INTER_AREA), shrink


@dataclass
class Shrunk:
    """A luminance already brought to the reading size (`for_reading`), with the factor it was shrunk by."""

    y: np.ndarray
    shrink: float


def for_reading(y: np.ndarray) -> Shrunk:
    """`y` at the size the reader works at, so a caller can let the full-size picture go before the search."""
    work, shrink = _work(y)
    return Shrunk(work, shrink)


def read_video(mean_luma: np.ndarray | Shrunk | None, frames_in_mean: int,
               key_lumas: Iterable[np.ndarray] = ()) -> VideoReading:
    """Look for the mark in a video from the mean luminance (float32 HxW) of its first `frames_in_mean`
    frames and from some key frames' luminance; stops at the first find."""
    looks: list[tuple[str, np.ndarray | Shrunk]] = []
    if mean_luma is not None:
        looks.append((f"mean of the first {frames_in_mean} frames", mean_luma))
    nothing = syncmark.Reading(False, None, np.zeros(syncmark.PAYLOAD_BITS, bool), 0.0, 1.0, (0, 0))
    best = VideoReading(nothing, "nothing readable", 0)
    count = 0
    for name, y in [*looks, *((f"key frame {k}", y) for k, y in enumerate(key_lumas))]:
        work, shrink = (y.y, y.shrink) if isinstance(y, Shrunk) else _work(y)
        reading = syncmark.read_luma(work)
        count += 1
        if shrink != 1.0:
            reading.scale /= shrink
        if reading.found or reading.z > best.reading.z:
            best = VideoReading(reading, name, count)
        if reading.found:
            break
    best.looks = count
    return best
