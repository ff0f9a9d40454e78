"""Props drawn with OpenCV for the face-swap tests and benches: a hand (palm, four fingers, thumb, wrist; skin
shading: no photo of a hand ships with any package this project may use, and MediaPipe's palm detector finds
this one) and a pair of glasses drawn around a face's eyes."""

from __future__ import annotations

import cv2
import numpy as np


def draw_hand(size: int = 400, angle: float = 0.0, skin: tuple[int, int, int] = (120, 160, 215),
              background: tuple[int, int, int] | None = (90, 110, 90)) -> tuple[np.ndarray, np.ndarray]:
    """(BGR image size x size, bool mask of the hand), an open right hand turned by `angle` degrees."""
    s = size / 400
    mask = np.zeros((size, size), np.uint8)
    cx, cy = int(200 * s), int(260 * s)
    cv2.ellipse(mask, (cx, cy), (int(70 * s), int(85 * s)), 0, 0, 360, 255, -1)
    for dx, length, width, tilt in ((-52, 110, 26, -8), (-18, 135, 28, -2), (18, 128, 28, 3), (50, 100, 24, 10)):
        bx, by = cx + dx * s, cy - 60 * s
        a = np.deg2rad(tilt)
        tx, ty = bx + np.sin(a) * length * s, by - np.cos(a) * length * s
        cv2.line(mask, (int(bx), int(by)), (int(tx), int(ty)), 255, max(1, int(width * s)))
        cv2.circle(mask, (int(tx), int(ty)), max(1, int(width * s / 2)), 255, -1)
    thumb_base, thumb_tip = (int(cx - 55 * s), int(cy + 20 * s)), (int(cx - 120 * s), int(cy - 50 * s))
    cv2.line(mask, thumb_base, thumb_tip, 255, max(1, int(30 * s)))
    cv2.circle(mask, (int(cx - 120 * s), int(cy - 50 * s)), max(1, int(15 * s)), 255, -1)
    cv2.rectangle(mask, (int(cx - 50 * s), int(cy + 40 * s)), (int(cx + 50 * s), size), 255, -1)
    shade = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 12 * s) / 255.0
    skin_img = np.empty((size, size, 3), np.float32)
    skin_img[:] = skin
    skin_img *= (0.75 + 0.35 * shade)[:, :, None]
    back = np.empty((size, size, 3), np.float32)
    back[:] = background if background is not None else (0, 0, 0)
    back *= np.linspace(0.7, 1.2, size, dtype=np.float32)[None, :, None]
    out = np.where((mask > 0)[:, :, None], skin_img, back)
    out[cv2.Canny(mask, 50, 150) > 0] *= 0.6  # the gaps between the fingers
    out = cv2.GaussianBlur(out, (0, 0), 1.2)
    if angle:
        turn = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
        out = cv2.warpAffine(out, turn, (size, size), borderMode=cv2.BORDER_REFLECT)
        mask = cv2.warpAffine(mask, turn, (size, size), flags=cv2.INTER_NEAREST)
    return out.clip(0, 255).astype(np.uint8), mask > 0


def hand_over_face(image: np.ndarray, face_box: tuple[float, float, float, float], angle: float = -15.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """`image` with a drawn hand over the lower left of the face in `face_box` (x0, y0, x1, y1), and the
    mask of the hand's pixels in it."""
    x0, y0, x1, y1 = face_box
    side = int((x1 - x0) * 1.3)
    hand, mask = draw_hand(side, angle)
    ox, oy = int(x0 - side * 0.25), int(y0 + (y1 - y0) * 0.35)
    out = image.copy()
    h, w = out[oy:oy + side, ox:ox + side].shape[:2]
    covered = mask[:h, :w]
    out[oy:oy + h, ox:ox + w][covered] = hand[:h, :w][covered]
    truth = np.zeros(image.shape[:2], bool)
    truth[oy:oy + h, ox:ox + w] = covered
    return out, truth


def draw_glasses(image: np.ndarray, pts: np.ndarray, thickness: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """`image` with a dark pair of glasses drawn around the eyes (rims, bridge, side arms to the temples), and
    the mask of the frame's pixels."""
    from genstudio.faceswap.landmarks import LEFT_EYE, RIGHT_EYE

    mask = np.zeros(image.shape[:2], np.uint8)
    span = float(np.linalg.norm(pts[33] - pts[263]))
    rims = []
    for eye in (RIGHT_EYE, LEFT_EYE):
        centre = pts[eye].mean(0)
        axes = (int(span * 0.24), int(span * 0.17))
        cv2.ellipse(mask, (int(centre[0]), int(centre[1])), axes, 0, 0, 360, 1, thickness)
        rims.append((centre, axes))
    (cr, ar), (cl, al) = rims
    cv2.line(mask, (int(cr[0] + ar[0]), int(cr[1])), (int(cl[0] - al[0]), int(cl[1])), 1, thickness)
    cv2.line(mask, (int(cr[0] - ar[0]), int(cr[1])), (int(pts[127][0]), int(pts[127][1])), 1, thickness)
    cv2.line(mask, (int(cl[0] + al[0]), int(cl[1])), (int(pts[356][0]), int(pts[356][1])), 1, thickness)
    out = image.copy()
    out[mask > 0] = (25, 20, 20)
    return out, mask > 0


def turned_face(image: np.ndarray, pts: np.ndarray, squeeze: float = 0.45) -> np.ndarray:
    """`image` with the face's image-right half squeezed towards the midline to `squeeze` of its width (and
    what lies beyond it moved in to follow), as a face turned to the image-right shows its far half: a
    stand-in for a three-quarter photo (no such public-domain photo ships with a package we may use). The
    face must be upright (eyes level)."""
    from genstudio.faceswap.engine import MESH_SIDE

    mid = float(pts[MESH_SIDE == 0][:, 0].mean())
    half = float(pts[454][0]) - mid  # the midline to the image-right cheek's edge
    h, w = image.shape[:2]
    xs = np.arange(w, dtype=np.float32)
    src = np.where(xs <= mid, xs, np.where(xs <= mid + squeeze * half, mid + (xs - mid) / squeeze,
                                           xs + (1 / squeeze - 1) * half))
    map_x = np.repeat(src[None, :], h, axis=0).astype(np.float32)
    map_y = np.repeat(np.arange(h, dtype=np.float32)[:, None], w, axis=1)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def look_aside(image: np.ndarray, pts: np.ndarray, shift: float) -> np.ndarray:
    """`image` with both irises moved along their eye by `shift` eye-widths (negative: to the image-left), as
    if the person looked aside: a smooth displacement around each iris, kept inside the eye's opening."""
    from genstudio.faceswap.engine import eye_frame
    from genstudio.faceswap.iris import IrisFinder
    from genstudio.faceswap.landmarks import LEFT_EYE, RIGHT_EYE

    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x, map_y = xs.copy(), ys.copy()
    for eye, (contour, iris) in enumerate(zip((RIGHT_EYE, LEFT_EYE), IrisFinder().irises(image, pts), strict=True)):
        origin, axis, width = eye_frame(pts, eye)
        move = axis * shift * width
        opening = np.zeros((h, w), np.uint8)
        cv2.fillPoly(opening, [pts[contour].astype(np.int32)], 1)
        opening = cv2.GaussianBlur(opening.astype(np.float32), (0, 0), 2)
        centre = iris[0] if iris is not None else origin
        sigma = 0.3 * width
        weight = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma ** 2)) * opening
        map_x -= move[0] * weight
        map_y -= move[1] * weight
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR)


def face_halves(shape: tuple[int, ...], pts: np.ndarray) -> dict[str, np.ndarray]:
    """The face oval of the landmarks `pts` split at its midline (5 px either side left out): "far" is the
    image-right half (the one turned_face squeezes), "near" the image-left one; boolean masks of `shape`."""
    from genstudio.faceswap.engine import FACE_OVAL, MESH_SIDE

    face = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(face, cv2.convexHull(pts[FACE_OVAL].astype(np.int32)), 1)
    mid = pts[MESH_SIDE == 0][:, 0].mean()
    xs = np.arange(shape[1])[None, :]
    return {"far": (face > 0) & (xs > mid + 5), "near": (face > 0) & (xs < mid - 5)}
