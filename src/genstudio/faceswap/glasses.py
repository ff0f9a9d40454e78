"""Glasses, found from the eye region's edges with no model: a frame is a thin dark line (the morphological
black-hat of the grey image picks out lines thinner than about an eighth of the eyes' span) across the nose
bridge and around the eyes, where a bare face has only skin. With the face mesh's eyes and brows masked out,
what stays in the band between the brows and the cheekbones is the frame.

Used two ways (a request's `glasses`):
- "target": the target's glasses stay on top of the swapped face (their frame's pixels are kept), and the
  source's are taken out of the source photo first, so the result never wears two pairs;
- "none": the source's glasses are taken out (their frame inpainted, OpenCV's Telea) so no half pair, its side
  arms cut at the face's edge, is pasted on;
- "source" (the default): the source's face as photographed, glasses and all.
"""

from __future__ import annotations

import cv2
import numpy as np

from genstudio.faceswap.landmarks import LEFT_EYE, RIGHT_EYE

GLASSES_MODES = ("source", "target", "none")
RIGHT_BROW = np.array([70, 63, 105, 66, 107, 55, 65, 52, 53, 46])  # image left
LEFT_BROW = np.array([300, 293, 334, 296, 336, 285, 295, 282, 283, 276])
_BAND_SIDES = (127, 356)                     # the temples (face oval)
_BAND_BOTTOM = np.array([50, 280, 118, 347])  # the cheekbones under the eyes
_BRIDGE = (133, 362, 168, 6)                  # inner eye corners; the bridge's top and bottom on the nose
GLASSES_SCORE = 20.0  # black-hat grey levels across the bridge above which a face wears glasses
RIM_LEVEL = 40.0      # black-hat grey levels above which a thin line where frames go is the frame
HAT_SHARE = 0.12      # the black-hat's kernel, as a share of the eyes' span: lines thinner than this are frame


def _eye_span(pts: np.ndarray) -> float:
    return float(np.linalg.norm(pts[33] - pts[263]))


def _band_box(pts: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1): the band from the brows to the cheekbones, temple to temple, a little wider."""
    pad = 0.08 * _eye_span(pts)
    xs = pts[list(_BAND_SIDES), 0]
    top = min(pts[RIGHT_BROW, 1].min(), pts[LEFT_BROW, 1].min())
    bottom = pts[_BAND_BOTTOM, 1].max()
    x0, y0 = int(max(0, xs.min() - pad)), int(max(0, top - pad))
    x1, y1 = int(min(shape[1], xs.max() + pad)), int(min(shape[0], bottom + pad))
    return (x0, y0, x1, y1) if x1 - x0 >= 8 and y1 - y0 >= 8 else None


def _black_hat(image: np.ndarray, pts: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    grey = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
    k = max(5, int(_eye_span(pts) * HAT_SHARE) | 1)
    return cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))


Band = tuple[tuple[int, int, int, int], np.ndarray]  # the eye band's box and its black-hat


def eye_band(image: np.ndarray, pts: np.ndarray) -> Band | None:
    """The band from the brows to the cheekbones (its box x0, y0, x1, y1) and its black-hat; None when the
    face is too small. glasses_score and frame_mask share it when given it."""
    box = _band_box(pts, image.shape)
    return None if box is None else (box, _black_hat(image, pts, box))


def glasses_score(image: np.ndarray, pts: np.ndarray, band: Band | None = None) -> float:
    """How strongly a thin dark line crosses the nose bridge between the eyes (the row of the bridge patch
    with the most black-hat, in grey levels): about 40 with glasses, under 10 without, in the test photos."""
    band = band or eye_band(image, pts)
    if band is None:
        return 0.0
    box, hat = band
    inner_r, inner_l, top, bottom = (pts[i] for i in _BRIDGE)
    xa, xb = sorted((int(inner_r[0]) - box[0], int(inner_l[0]) - box[0]))
    xa, xb = xa + (xb - xa) // 4, xb - (xb - xa) // 4  # the middle half: clear of the eyes' corners
    ya = int(top[1]) - box[1] - int(0.05 * _eye_span(pts))
    yb = int(bottom[1]) - box[1] + int(0.05 * _eye_span(pts))
    patch = hat[max(0, ya):max(0, yb), max(0, xa):max(0, xb)].astype(np.float32)
    return float(patch.mean(axis=1).max()) if patch.size else 0.0


def has_glasses(image: np.ndarray, pts: np.ndarray) -> bool:
    return glasses_score(image, pts) >= GLASSES_SCORE


def _where_frames_go(pts: np.ndarray, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(rims and arms, bridge) over the band: where a frame can be. Rims: an ellipse around each eye (the eye
    itself left out); arms: a strip at the eyes' height to the band's sides; the bridge: between the inner
    corners of the eyes, brow-root to nose-bridge."""
    x0, y0, x1, y1 = box
    span = _eye_span(pts)
    offset = np.array([x0, y0], np.float32)
    rims = np.zeros((y1 - y0, x1 - x0), np.uint8)
    eyes = np.zeros_like(rims)
    centres = []
    for idx in (RIGHT_EYE, LEFT_EYE):
        centre = pts[idx].mean(0) - offset
        centres.append(centre)
        cv2.ellipse(rims, (int(centre[0]), int(centre[1])), (int(0.42 * span), int(0.30 * span)), 0, 0, 360, 1, -1)
        cv2.fillPoly(eyes, [cv2.convexHull(np.round(pts[idx] - offset).astype(np.int32))], 1)
    height, half = int((centres[0][1] + centres[1][1]) / 2), int(0.1 * span)
    cv2.rectangle(rims, (0, height - half), (x1 - x0, height + half), 1, -1)
    k = max(3, int(span * 0.05) | 1)
    rims *= 1 - cv2.dilate(eyes, np.ones((k, k), np.uint8))
    bridge = np.zeros_like(rims)
    inner_r, inner_l, top, bottom = (pts[i] - offset for i in _BRIDGE)
    xa, xb = sorted((int(inner_r[0]), int(inner_l[0])))
    bridge[max(0, int(top[1] - 0.08 * span)):max(0, int(bottom[1] + 0.08 * span)), max(0, xa):max(0, xb)] = 1
    return rims, bridge


def frame_mask(image: np.ndarray, pts: np.ndarray, band: Band | None = None
               ) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """(mask in [0, 1] of the glasses' frame over the band, the band's box x0, y0, x1, y1). The frame: thin dark
    lines (black-hat over RIM_LEVEL; half that across the bridge) where frames go, in connected pieces at
    least 30% of the eyes' span long (a wrinkle or a lash line is shorter). None when the face is too small."""
    band = band or eye_band(image, pts)
    if band is None:
        return None
    box, hat = band[0], band[1].astype(np.float32)
    rims, bridge = _where_frames_go(pts, box)
    lines = (((hat > RIM_LEVEL) & (rims > 0)) | ((hat > RIM_LEVEL / 2) & (bridge > 0))).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(lines, connectivity=8)
    long_enough = np.flatnonzero(stats[:, 2:4].max(axis=1) >= 0.3 * _eye_span(pts))
    long_enough = long_enough[long_enough > 0]
    mask = np.isin(labels, long_enough).astype(np.float32)
    return cv2.GaussianBlur(cv2.dilate(mask, np.ones((3, 3), np.uint8)), (0, 0), 1.0), box


def remove_glasses(image: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """The photo with the glasses' frame inpainted away (a copy; OpenCV's Telea, fine for thin lines: a faint
    trace of thick frames or of the lenses' edges may stay)."""
    found = frame_mask(image, pts)
    if found is None:
        return image
    mask, (x0, y0, x1, y1) = found
    hole = cv2.dilate((mask > 0.3).astype(np.uint8), np.ones((3, 3), np.uint8)) * 255
    out = image.copy()
    out[y0:y1, x0:x1] = cv2.inpaint(image[y0:y1, x0:x1], hole, 5, cv2.INPAINT_TELEA)
    return out


def keep_frame(target: np.ndarray, out: np.ndarray, pts: np.ndarray, band: Band | None = None) -> bool:
    """Put the target's glasses frame (around the face with landmarks `pts`) back on top of `out`."""
    found = frame_mask(target, pts, band)
    if found is None:
        return False
    mask, (x0, y0, x1, y1) = found
    if not mask.any():
        return False
    part = (slice(y0, y1), slice(x0, x1))
    before = target[part].astype(np.float32)
    out[part] = np.clip(before + (1.0 - mask[:, :, None]) * (out[part].astype(np.float32) - before), 0, 255
                        ).astype(np.uint8)
    return True
