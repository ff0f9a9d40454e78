"""The visible "AI-generated" label stamped on every face-swap output frame."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BOX_OPACITY = 0.6


@lru_cache(maxsize=32)
def _overlay(width: int, height: int, corner: str, text: str) -> tuple[int, int, np.ndarray, np.ndarray]:
    """(x, y, colour patch, alpha patch) for a frame size: rendered once, then only blended."""
    short = min(width, height)
    scale = max(0.5, short / 550.0)        # text about 4% of the short side, never under ~11 px
    thickness = max(1, round(scale * 1.6))
    (tw, th), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    pad = max(3, round(th * 0.45))
    bw, bh = min(width, tw + 2 * pad), min(height, th + baseline + 2 * pad)
    margin = max(2, round(short * 0.015))
    x = margin if corner.endswith("left") else width - bw - margin
    y = margin if corner.startswith("top") else height - bh - margin
    x, y = max(0, x), max(0, y)
    text_mask = np.zeros((bh, bw), np.uint8)
    cv2.putText(text_mask, text, (pad, pad + th), _FONT, scale, 255, thickness, cv2.LINE_AA)
    ink = text_mask.astype(np.float32)[:, :, None] / 255.0
    colour = np.repeat(255.0 * ink, 3, axis=2)  # white text on a black box
    alpha = _BOX_OPACITY + (1.0 - _BOX_OPACITY) * ink
    return x, y, colour, alpha


def draw_label(frame_bgr: np.ndarray, corner: str = "bottom-right", text: str = "AI-generated") -> np.ndarray:
    """A copy of the frame with `text` in white on a semi-opaque black box in `corner`, sized to the frame."""
    if corner not in CORNERS:
        raise ValueError(f"corner must be one of {', '.join(CORNERS)}, got {corner!r}")
    if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 BGR frame, got shape {frame_bgr.shape} dtype {frame_bgr.dtype}")
    out = frame_bgr.copy()
    stamp_label(out, corner, text)
    return out


def stamp_label(frame_bgr: np.ndarray, corner: str = "bottom-right", text: str = "AI-generated") -> None:
    """draw_label in place, for a frame the caller owns (saves a full-frame copy per video frame)."""
    if corner not in CORNERS:
        raise ValueError(f"corner must be one of {', '.join(CORNERS)}, got {corner!r}")
    height, width = frame_bgr.shape[:2]
    x, y, colour, alpha = _overlay(width, height, corner, text)
    h, w = alpha.shape[:2]
    region = frame_bgr[y:y + h, x:x + w].astype(np.float32)
    frame_bgr[y:y + h, x:x + w] = np.rint(region + alpha * (colour - region)).astype(np.uint8)


def label_box(width: int, height: int, corner: str = "bottom-right", text: str = "AI-generated"
              ) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the label for a frame size, for checks and for `genstudio verify`."""
    x, y, colour, _ = _overlay(width, height, corner, text)
    return x, y, colour.shape[1], colour.shape[0]
