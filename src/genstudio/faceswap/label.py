"""The visible "AI-generated" label stamped on every face-swap output frame."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from genstudio.errors import LimitError

CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BOX_OPACITY = 0.6
# The smallest text still legible as "AI-generated" (about 9 px tall): a target that cannot hold the label
# at this size is refused rather than labelled illegibly or clipped.
MIN_SCALE = 0.35
_MIN_MARGIN = 2


class LabelDoesNotFit(LimitError):
    """The target is too small for a legible label (answered 422, naming `target`)."""


def _box(scale: float, text: str) -> tuple[int, int, int, int, int, int]:
    """(box width, box height, text height, baseline, padding, stroke thickness) at a font scale."""
    thickness = max(1, round(scale * 1.6))
    (tw, th), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    pad = max(3, round(th * 0.45))
    return tw + 2 * pad, th + baseline + 2 * pad, th, baseline, pad, thickness


def min_target_size(text: str = "AI-generated") -> tuple[int, int]:
    """(width, height) of the smallest frame that holds a legible label."""
    bw, bh = _box(MIN_SCALE, text)[:2]
    return bw + 2 * _MIN_MARGIN, bh + 2 * _MIN_MARGIN


@lru_cache(maxsize=32)
def _overlay(width: int, height: int, corner: str, text: str) -> tuple[int, int, np.ndarray, np.ndarray]:
    """(x, y, colour patch, alpha patch) for a frame size: rendered once, then only blended. The text is
    about 4% of the short side (never under ~11 px), scaled down where the frame is too narrow or too
    low for that; never clipped."""
    short = min(width, height)
    scale = max(0.5, short / 550.0)
    margin = max(_MIN_MARGIN, round(short * 0.015))
    for _ in range(50):
        bw, bh, th, baseline, pad, thickness = _box(scale, text)
        if bw + 2 * margin <= width and bh + 2 * margin <= height:
            break
        if scale <= MIN_SCALE:
            if margin > _MIN_MARGIN:
                margin = _MIN_MARGIN
                continue
            need_w, need_h = min_target_size(text)
            raise LabelDoesNotFit(
                "target",
                f"{width}x{height} is too small for a legible \"{text}\" label: "
                f"a target needs at least {need_w}x{need_h} pixels",
            )
        fit = min((width - 2 * margin) / bw, (height - 2 * margin) / bh)
        scale = max(MIN_SCALE, scale * min(fit, 0.97))
    else:  # pragma: no cover - the scale reaches MIN_SCALE well within the loop
        raise AssertionError("label layout did not converge")
    x = margin if corner.endswith("left") else width - bw - margin
    y = margin if corner.startswith("top") else height - bh - margin
    text_mask = np.zeros((bh, bw), np.uint8)
    cv2.putText(text_mask, text, (pad, pad + th), _FONT, scale, 255, thickness, cv2.LINE_AA)
    ink = text_mask.astype(np.float32)[:, :, None] / 255.0
    colour = np.repeat(255.0 * ink, 3, axis=2)  # white text on a black box
    alpha = _BOX_OPACITY + (1.0 - _BOX_OPACITY) * ink
    return x, y, colour, alpha


def draw_label(frame_bgr: np.ndarray, corner: str = "bottom-right", text: str = "AI-generated") -> np.ndarray:
    """A copy of the frame with `text` in white on a semi-opaque black box in `corner`, sized to the frame.
    LabelDoesNotFit (a LimitError naming `target`) if the frame is too small for a legible label."""
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
