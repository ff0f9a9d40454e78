"""Landmark face-swap engine: mesh-driven warp of one source photo onto every target face, with colour transfer,
the target's own mouth interior (and eyes where the expressions differ), a feathered blend and temporal smoothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from genstudio.faceswap.landmarks import (
    FACE_OVAL,
    INNER_LIPS,
    LEFT_EYE,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    NOSE_TIP,
    RIGHT_EYE,
    FaceLandmarker,
    eye_openness,
    present,
    roi_from_landmarks,
)

# ArcFace's 112x112 five-point template (image-left eye, image-right eye, nose tip, mouth corners).
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)

_SOURCE_FACE_SIZE = 256   # the source face is kept at about this many pixels across
_MAP_GRID = 96            # warp maps are computed on a grid this size and upsampled (they are piecewise linear)
_DETECT_EVERY = 5         # look for new faces every n frames while others are tracked
MIN_FACE = 24             # px: the smallest face the small-face search looks for
SMALL_FACE_EVERY = 30     # frames between small-face searches in a 640x480 video (about a second)...
SMALL_FACE_EVERY_MAX = 150  # ...and in larger ones, in proportion to the area (the search's cost), up to this
# Eye-aspect-ratio difference between source and target over which the target's own eye fades in (a blink, a
# squint); a ramp rather than a threshold, so an eye near the limit does not flicker between the two.
_EYE_KEEP_RAMP = (0.05, 0.12)
_MATCH_IOU = 0.3
WORK_SIDE = 320          # px: faces larger than this are rendered at this size, then blended at full size
CONTRAST_FLOOR = 0.25    # lowest contrast gain of the colour transfer (0.5 left dark clips over-contrasted)
LOCAL_COLOUR = 0.1        # local colour transfer's Gaussian, as a share of the face's size (0 = global only)
FADE_IN_SECONDS = 0.2    # a face that appears mid-video fades in over this long (video and live tracks)
# One-Euro (min cutoff Hz, speed coefficient) of the landmark smoother: the head's pose, and the pose-free
# shape. Chosen on bench/run_faceswap_stability_bench.py (was (1.0, 1.0) and (0.5, 0.1)): less added change on
# turning and zooming faces, for a little more lag on fast motion (measured there too).
POSE_SMOOTHING = (1.0, 0.3)
SHAPE_SMOOTHING = (0.2, 0.05)
COLOUR_MEMORY = 0.8      # share of the previous frame's colour statistics kept in a video (0 = none)
REID_SIMILARITY = 0.85   # face_similarity above which a returning face is taken for the indexed target


class NoFaceError(ValueError):
    """The source photo has no detectable face."""


@dataclass
class SwapOptions:
    # Index of the face to replace, faces numbered left to right in the first frame each appears; None = the largest.
    target_face: int | None = None
    many_faces: bool = False         # replace every face
    reference_bgr: np.ndarray | None = None  # pick the target face most similar to this photo's face
    smoothing: bool = True           # temporal landmark smoothing (video); off for single images
    # Look for faces down to MIN_FACE px (a pyramid of tiles) on the first frame and every
    # small_face_every(frame) frames after; live mode turns it off (a slow frame would stutter).
    small_faces: bool = True
    # The optional ONNX face models (face_models.py), when the swapper has them: an enhancer blend amount
    # (0 = off), the occlusion mask (keep what is in front of the target's face) and the region mask (only the
    # target's skin, brows, eyes, nose and lips take the swap).
    enhance: float = 0.0
    occlusion_mask: bool = False
    region_mask: bool = False
    # Keep the target's hands where they cover the face (hands.py: MediaPipe's palm detector and hand
    # landmarks, built in).
    hand_mask: bool = False
    # Whose glasses the result shows (glasses.py): "source" (the source photo as it is), "target" (the
    # target's frame kept on top; the source's taken out first) or "none" (the source's taken out).
    glasses: str = "source"
    # The seam: "feather" (the mask's soft edge) or "multiband" (blend_multiband: Burt and Adelson's pyramid).
    blend: str = "feather"
    # Put the source's irises where the target's are (iris.py), so the result looks where the target looks.
    follow_gaze: bool = False


def five_points(pts: np.ndarray) -> np.ndarray:
    """Eye centres, nose tip and mouth corners from the mesh, in ARCFACE_TEMPLATE's order."""
    return np.array([pts[RIGHT_EYE].mean(0), pts[LEFT_EYE].mean(0), pts[NOSE_TIP],
                     pts[MOUTH_RIGHT], pts[MOUTH_LEFT]], np.float32)


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity transform taking points `src` to `dst` (Umeyama 1991)."""
    src, dst = src.astype(np.float64), dst.astype(np.float64)
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    norm = (a ** 2).sum()
    c = (a * b).sum() / norm
    s = (a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum() / norm
    rot = np.array([[c, -s], [s, c]])
    return np.hstack([rot, (md - rot @ ms)[:, None]]).astype(np.float32)


def align_matrix(pts: np.ndarray, size: int) -> np.ndarray:
    """2x3 similarity transform taking a face to the ArcFace template scaled to `size` pixels."""
    return similarity_fit(five_points(pts), ARCFACE_TEMPLATE * (size / 112.0))


_GEOMETRY_IDX = np.arange(0, 468, 6)


def face_descriptor(frame_bgr: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(appearance, geometry): a 32x32 contrast-normalised luminance crop of the aligned face plus the mean
    a/b chroma, and every sixth landmark in the aligned frame (face proportions)."""
    matrix = align_matrix(pts, 64)
    crop = cv2.warpAffine(frame_bgr, matrix, (64, 64), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    lab = cv2.cvtColor(crop[12:60, 8:56], cv2.COLOR_BGR2LAB).astype(np.float32)
    lum = cv2.resize(lab[:, :, 0], (32, 32), interpolation=cv2.INTER_AREA).ravel()
    lum = (lum - lum.mean()) / (lum.std() + 1e-6)
    chroma = (lab[:, :, 1:].reshape(-1, 2).mean(0) - 128.0) / 16.0
    appearance = np.concatenate([lum / np.sqrt(lum.size), chroma])
    geometry = (pts[_GEOMETRY_IDX] @ matrix[:, :2].T + matrix[:, 2]) / 64.0
    return appearance.astype(np.float32), geometry.astype(np.float32)


def face_similarity(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """In [-1, 1]: cosine of the appearance vectors, less a penalty for differing proportions."""
    app = float(a[0] @ b[0] / (np.linalg.norm(a[0]) * np.linalg.norm(b[0]) + 1e-9))
    geom_rms = float(np.sqrt(((a[1] - a[1].mean(0)) - (b[1] - b[1].mean(0))).__pow__(2).sum(1).mean()))
    return 0.7 * app + 0.3 * (1.0 - min(geom_rms / 0.05, 2.0))


class OneEuro:
    """One-Euro filter (Casiez et al. 2012) over an array: the cutoff rises with speed, so slow jitter is
    smoothed hard and fast motion passes with little lag."""

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, dt: float) -> np.ndarray:
        if self.value is None:
            self.value, self.speed = x.copy(), np.zeros_like(x)
            return x.copy()
        speed = (x - self.value) / dt
        self.speed = self.speed + self._alpha(self.d_cutoff, dt) * (speed - self.speed)
        alpha = self._alpha(self.min_cutoff + self.beta * np.abs(self.speed), dt)
        self.value = self.value + alpha * (x - self.value)
        return self.value.copy()


class LandmarkSmoother:
    """Smooths a landmark stream in a pose-normalised frame: the similarity pose (centre, scale, rotation) and
    the pose-free shape get separate One-Euro filters, so head motion is followed closely while the
    frame-to-frame wobble of individual points (the visible jitter) is filtered hard."""

    def __init__(self, fps: float = 30.0, pose: tuple[float, float] | None = None,
                 shape: tuple[float, float] | None = None) -> None:
        self.dt = 1.0 / max(fps, 1.0)
        self.pose_filter = OneEuro(*(pose or POSE_SMOOTHING))
        self.shape_filter = OneEuro(*(shape or SHAPE_SMOOTHING))
        self.reference: np.ndarray | None = None
        self.size = 1.0

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        centre = pts.mean(0)
        centred = (pts - centre).astype(np.float64)
        if self.reference is None:
            self.size = float(np.sqrt((centred ** 2).sum(1).mean()))
            self.reference = centred / self.size
        ref = self.reference
        norm = (ref ** 2).sum()
        a = (ref * centred).sum() / norm
        b = (ref[:, 0] * centred[:, 1] - ref[:, 1] * centred[:, 0]).sum() / norm
        scale, angle = float(np.hypot(a, b)), float(np.arctan2(b, a))
        c, s = np.cos(-angle), np.sin(-angle)
        shape = centred @ np.array([[c, s], [-s, c]]) / scale  # pose-free, in reference units
        # Work in pixels so one set of cutoffs fits faces of any size.
        pose = np.array([centre[0], centre[1], np.log(scale) * self.size, angle * self.size])
        pose = self.pose_filter(pose, self.dt)
        shape = self.shape_filter(shape * self.size, self.dt) / self.size
        scale, angle = np.exp(pose[2] / self.size), pose[3] / self.size
        c, s = np.cos(angle), np.sin(angle)
        return (shape @ np.array([[c, s], [-s, c]]) * scale + pose[:2]).astype(np.float32)


@dataclass
class _Face:
    ident: int
    order: int
    raw: np.ndarray
    smoothed: np.ndarray
    smoother: LandmarkSmoother | None
    descriptor: tuple[np.ndarray, np.ndarray] | None = None
    shown: int = 0  # frames this face has been swapped in (for the fade-in)
    glasses: float = -1.0  # running glasses score of this target face (glasses="target"); -1 = not yet seen
    colour: dict = field(default_factory=dict)  # the colour transfer's memory (colour_transfer)

    def box(self) -> np.ndarray:
        return np.concatenate([self.raw.min(0), self.raw.max(0)])

    def area(self) -> float:
        x0, y0, x1, y1 = self.box()
        return float((x1 - x0) * (y1 - y0))


def small_face_every(shape: tuple[int, ...]) -> int:
    """Frames between small-face searches: SMALL_FACE_EVERY at 640x480 and below, more in proportion to the
    frame's area (the pyramid's cost grows with it: 56 ms at 640x480, 342 ms at 1080p), at most
    SMALL_FACE_EVERY_MAX, so the search costs about the same share of a frame at any size."""
    area = shape[0] * shape[1] / (640 * 480)
    return int(min(SMALL_FACE_EVERY_MAX, max(SMALL_FACE_EVERY, round(SMALL_FACE_EVERY * area))))


@dataclass
class Track:
    """Per-video state: tracked faces (landmarks, smoothing, identity) and which one is the target."""

    options: SwapOptions
    fps: float = 30.0
    faces: list[_Face] = field(default_factory=list)
    frame_index: int = 0
    next_ident: int = 0
    next_order: int = 0
    reference: tuple[np.ndarray, np.ndarray] | None = None
    target: tuple[np.ndarray, np.ndarray] | None = None  # descriptor of the indexed face, to know it again
    search: dict = field(default_factory=dict)  # the small-face search's memory of its tiles (landmarks.detect)


@dataclass
class _Source:
    image: np.ndarray
    pts: np.ndarray
    triangles: np.ndarray
    eyes: tuple[float, float]
    # Where each triangle's texture comes from in the source: `triangles` itself, or, for the far half of a
    # turned source face, the mirrored triangle of the near half (source_far_side).
    src_triangles: np.ndarray | None = None
    turn: float = 0.0
    # follow_gaze (iris.py): the source's two irises (2x5x2: centre and four rim points), the triangulation
    # with them as points 468-477, and its far-half variant; None until a swap first asks (or when the
    # source's eyes are closed).
    iris: np.ndarray | None = None
    iris_triangles: np.ndarray | None = None
    iris_src_triangles: np.ndarray | None = None
    iris_tried: bool = False


# The face mesh's left-right symmetry (scripts/make_mesh_mirror.py): each point's mirror across the midline,
# and its side (-1 image-left on a frontal face, +1 image-right, 0 on the midline).
_MIRROR = json.loads((Path(__file__).resolve().parent / "mesh_mirror.json").read_text())
MESH_MIRROR = np.array(_MIRROR["mirror"], np.int32)
MESH_SIDE = np.array(_MIRROR["side"], np.int8)
TURN_MIRROR = 0.42  # |turn| above which a source face's far half is drawn from its near half, mirrored


def face_turn(pts: np.ndarray) -> float:
    """How far a face is turned, from its landmarks: (near half's width - far half's) / both, measured from the
    nose tip to the cheek edges along the eyes' axis; 0 frontal, > 0 when the image-right half is wider (the
    face turned towards the image-left)."""
    axis = pts[263] - pts[33]
    axis = axis / max(float(np.linalg.norm(axis)), 1e-6)
    xs = pts @ axis
    left, right = float(xs[4] - xs[234]), float(xs[454] - xs[4])
    return (right - left) / max(right + left, 1e-6)


def eye_frame(pts: np.ndarray, eye: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(origin, unit axis, width) of eye `eye` (0 image-left, 1 image-right) from its two corners."""
    from genstudio.faceswap.iris import EYE_CORNERS

    a, b = pts[EYE_CORNERS[eye][0]], pts[EYE_CORNERS[eye][1]]
    width = max(float(np.linalg.norm(b - a)), 1e-6)
    return (a + b) / 2, (b - a) / width, width


def iris_in(pts: np.ndarray, eye: int, where: np.ndarray, from_pts: np.ndarray) -> np.ndarray:
    """The point `where` (an iris centre of the face `from_pts`) carried to the same place in eye `eye` of the
    face `pts`, in the eye's own frame (along and across the corner-to-corner line, in eye widths)."""
    o1, u1, w1 = eye_frame(from_pts, eye)
    o2, u2, w2 = eye_frame(pts, eye)
    d = where - o1
    along, across = float(d @ u1) / w1, float(d @ np.array([-u1[1], u1[0]])) / w1
    return (o2 + (along * u2 + across * np.array([-u2[1], u2[0]])) * w2).astype(np.float32)


def source_far_side(triangles: np.ndarray, turn: float) -> np.ndarray | None:
    """For a turned source face: each triangle's source triangle, the far half's replaced by its mirror on the
    near half (a turned photo shows its far cheek squeezed; stretched back over a frontal target it smears),
    None when the face is frontal enough (|turn| <= TURN_MIRROR)."""
    if abs(turn) <= TURN_MIRROR:
        return None
    far = -1 if turn > 0 else 1
    side = np.concatenate([MESH_SIDE, [-1] * 5, [1] * 5])  # with the irises (follow_gaze) as points 468-477
    mirror = np.concatenate([MESH_MIRROR, np.arange(473, 478), np.arange(468, 473)])
    sides = side[triangles]
    use = ((sides == far) | (sides == 0)).all(axis=1) & (sides == far).any(axis=1)
    return np.where(use[:, None], mirror[triangles], triangles).astype(triangles.dtype)


def delaunay(pts: np.ndarray) -> np.ndarray:
    """Triangles (Tx3 landmark indices) of the Delaunay triangulation of `pts`."""
    lo, hi = pts.min(0) - 2, pts.max(0) + 2
    subdiv = cv2.Subdiv2D((int(lo[0]), int(lo[1]), int(hi[0] - lo[0]) + 2, int(hi[1] - lo[1]) + 2))
    for p in pts:
        subdiv.insert((float(p[0]), float(p[1])))
    tris = subdiv.getTriangleList().reshape(-1, 3, 2)
    dist = np.linalg.norm(tris[:, :, None, :] - pts[None, None, :, :], axis=-1)
    idx = dist.argmin(-1)
    ok = (dist.min(-1) < 1e-3).all(1)
    return idx[ok].astype(np.int32)


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def warp_maps(dst_pts: np.ndarray, src_pts: np.ndarray, triangles: np.ndarray,
              x0: int, y0: int, w: int, h: int, src_triangles: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps (h x w float32) that pull each pixel of the box at (x0, y0) from the source image,
    piecewise affine over the triangles. Computed on a coarse grid and upsampled bilinearly, which is exact
    inside each triangle and costs one small raster instead of a warp per triangle. `src_triangles`: where
    each triangle's texture comes from in the source (default: the same triangle)."""
    gw, gh = min(w, _MAP_GRID), min(h, _MAP_GRID)
    sx, sy = gw / w, gh / h
    # Box pixel x sits at grid coordinate (x + 0.5) * sx - 0.5, cv2.resize's convention.
    grid_pts = np.stack([(dst_pts[:, 0] - x0 + 0.5) * sx - 0.5, (dst_pts[:, 1] - y0 + 0.5) * sy - 0.5], axis=1)
    ids = np.full((gh, gw), len(triangles), np.int32)
    fill = cv2.fillConvexPoly  # ~900 calls a frame: positional arguments and views, not keywords and indexing
    for t, poly in enumerate(list(np.round(grid_pts * 16).astype(np.int32)[triangles])):
        fill(ids, poly, t, cv2.LINE_8, 4)
    # Affine per triangle from box pixel coordinates to source coordinates, in closed form: the linear part
    # maps the triangle's edge vectors onto the source's (M = F @ inv(E), E and F 2x2), then the translation.
    box_pts = dst_pts - np.array([x0, y0], np.float32)
    p = box_pts[triangles].astype(np.float64)
    q = src_pts[triangles if src_triangles is None else src_triangles].astype(np.float64)
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    f1, f2 = q[:, 1] - q[:, 0], q[:, 2] - q[:, 0]
    det = e1[:, 0] * e2[:, 1] - e2[:, 0] * e1[:, 1]
    good = np.abs(det) > 1e-3
    inv_det = np.where(good, 1.0 / np.where(good, det, 1.0), 0.0)
    # inv(E) = [[e2y, -e2x], [-e1y, e1x]] / det, E's columns being e1 and e2.
    m = np.empty((len(triangles), 2, 2))
    for r in range(2):
        m[:, r, 0] = (f1[:, r] * e2[:, 1] - f2[:, r] * e1[:, 1]) * inv_det
        m[:, r, 1] = (f2[:, r] * e1[:, 0] - f1[:, r] * e2[:, 0]) * inv_det
    shift = q[:, 0] - np.einsum("trc,tc->tr", m, p[:, 0])
    affines = np.empty((len(triangles) + 1, 2, 3), np.float32)
    global_affine, _ = cv2.estimateAffine2D(box_pts, src_pts, method=cv2.LMEDS)
    if global_affine is None:
        global_affine = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    affines[:] = global_affine
    affines[:-1][good] = np.concatenate([m, shift[:, :, None]], axis=2)[good]
    return maps_on_grid(affines, ids, w, h)


def maps_on_grid(affines: np.ndarray, ids: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """The remap maps of a w x h box from per-triangle affines (T+1 x 2 x 3, the last for pixels outside every
    triangle) and the grid's triangle index image (gh x gw), evaluated at the grid's cell centres and
    upsampled bilinearly to the box."""
    gh, gw = ids.shape
    gx = (np.arange(gw, dtype=np.float32) + 0.5) / (gw / w) - 0.5
    gy = (np.arange(gh, dtype=np.float32) + 0.5) / (gh / h) - 0.5
    a = affines[ids]
    map_x = a[..., 0, 0] * gx[None, :] + a[..., 0, 1] * gy[:, None] + a[..., 0, 2]
    map_y = a[..., 1, 0] * gx[None, :] + a[..., 1, 1] * gy[:, None] + a[..., 1, 2]
    if (gw, gh) != (w, h):
        map_x = cv2.resize(map_x, (w, h), interpolation=cv2.INTER_LINEAR)
        map_y = cv2.resize(map_y, (w, h), interpolation=cv2.INTER_LINEAR)
    return map_x, map_y


def _poly(mask: np.ndarray, pts: np.ndarray, value: int, grow: float = 1.0) -> None:
    if grow != 1.0:
        centre = pts.mean(0)
        pts = centre + (pts - centre) * grow
    cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], value, lineType=cv2.LINE_AA, shift=4)


def eye_keep_weights(target_pts: np.ndarray, source_eyes: tuple[float, float]) -> tuple[float, float]:
    """How much of each of the target's own eyes to keep (0..1), from the difference in eye openness."""
    lo, hi = _EYE_KEEP_RAMP
    return tuple(float(np.clip((abs(t - s) - lo) / (hi - lo), 0.0, 1.0))
                 for t, s in zip(eye_openness(target_pts), source_eyes, strict=True))


def face_mask(pts: np.ndarray, x0: int, y0: int, w: int, h: int, keep_eyes: tuple[float, float]
              ) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, core): a feathered float32 blend weight over the box, and the hard uint8 mask the colour
    statistics use. Zero over the target's mouth interior, and over an eye the target keeps."""
    local = pts - np.array([x0, y0], np.float32)
    size = float(np.ptp(local[FACE_OVAL], axis=0).max())
    # The face oval's hull pulled in by 5% of the face's size towards its centre, drawn anti-aliased with
    # sub-pixel vertices: an erosion that moves smoothly with the face. (A binary erosion by a whole number
    # of pixels jumped a pixel at a time as the face turned or grew: more flicker at the seam, measured on
    # the stability bench.)
    outer = face_outline(cv2.convexHull(local[FACE_OVAL]).reshape(-1, 2), size * 0.05, (h, w))
    holes = np.zeros((h, w), np.uint8)
    _poly(holes, local[INNER_LIPS], 255)
    for keep, eye in zip(keep_eyes, (RIGHT_EYE, LEFT_EYE), strict=True):
        if keep > 0:
            _poly(holes, local[eye], int(round(255 * keep)), grow=1.35)
    core = np.where(holes >= 128, 0, outer).astype(np.uint8)
    outer_f = soft_edge(outer, max(1.0, size * 0.035)).astype(np.float32) / 255.0
    holes_f = cv2.GaussianBlur(holes, (0, 0), max(0.7, size * 0.008)).astype(np.float32) / 255.0
    return outer_f * (1.0 - holes_f), core


def face_outline(hull: np.ndarray, inset: float, shape: tuple[int, int]) -> np.ndarray:
    """A uint8 mask of `shape` holding the convex `hull` pulled in by `inset` px towards its centre, drawn
    anti-aliased with sub-pixel vertices."""
    centre = hull.mean(0)
    reach = np.maximum(np.linalg.norm(hull - centre, axis=1, keepdims=True), 1e-6)
    mask = np.zeros(shape, np.uint8)
    _poly(mask, centre + (hull - centre) * np.maximum(0.0, 1.0 - inset / reach), 255)
    return mask


def soft_edge(mask: np.ndarray, sigma: float) -> np.ndarray:
    """The feather of a hard uint8 mask: a stack blur (a tent-shaped kernel, which with a radius of 2.45 sigma
    has a Gaussian's spread) costs the same at any width, where a wide Gaussian on a large face cost ten times
    more (bench/run_faceswap_pieces_bench.py). The stability bench, run with each: pan 14.7 / 15.4%, rotate
    20.3 / 21.2%, zoom 19.5 / 19.1%, mixed 16.7 / 16.7% (stack / Gaussian)."""
    radius = max(1, round(2.45 * sigma))
    return cv2.stackBlur(mask, (2 * radius + 1, 2 * radius + 1))


def colour_transfer(src_bgr: np.ndarray, dst_bgr: np.ndarray, mask: np.ndarray, local: float = 0.0,
                    memory: dict | None = None) -> np.ndarray:
    """Shift src's LAB mean and std inside `mask` to dst's (Reinhard et al. 2001); then, when `local` > 0, the
    remaining low-frequency difference (lighting falling across the face, a shadowed cheek, a local tint) is
    moved too: src gets G(dst) - G(src), the two masked local means over a Gaussian of `local` pixels, so the
    far cheek of a side-lit face is as dark as the target's, not as the face's average. The correction is
    clipped to 40 levels so that a wrong mesh cannot paint the target's features onto the source.

    `memory` (one dict per tracked face, video only): the gain, offset and local shift are blended with the
    previous frame's (COLOUR_MEMORY of the old), so resampling noise in the statistics does not flicker."""
    if cv2.countNonZero(mask) < 16:
        return src_bgr
    src_lab = cv2.cvtColor(src_bgr, cv2.COLOR_BGR2LAB)
    dst_lab = cv2.cvtColor(dst_bgr, cv2.COLOR_BGR2LAB)
    s_mean, s_std = cv2.meanStdDev(src_lab, mask=mask)
    d_mean, d_std = cv2.meanStdDev(dst_lab, mask=mask)
    gain = np.clip(d_std.ravel() / np.maximum(s_std.ravel(), 1.0), CONTRAST_FLOOR, 2.0)
    offset = d_mean.ravel() - s_mean.ravel() * gain
    if memory is not None:
        if "gain" in memory:
            gain = COLOUR_MEMORY * memory["gain"] + (1 - COLOUR_MEMORY) * gain
            offset = COLOUR_MEMORY * memory["offset"] + (1 - COLOUR_MEMORY) * offset
        memory["gain"], memory["offset"] = gain, offset
    lab = src_lab.astype(np.float32) * gain.astype(np.float32) + offset.astype(np.float32)
    if local > 0:
        # Local means at low resolution (the Gaussian is 2 px there), then the shift brought back up: the same
        # low-pass at a few percent of the cost of a wide Gaussian at full size.
        h, w = mask.shape
        k = min(1.0, 2.0 / local)
        size = (max(2, round(w * k)), max(2, round(h * k)))
        m = (mask > 0).astype(np.float32)
        small_m = cv2.GaussianBlur(cv2.resize(m, size, interpolation=cv2.INTER_AREA), (0, 0), local * k)
        small_d = cv2.GaussianBlur(cv2.resize(dst_lab.astype(np.float32) * m[:, :, None], size,
                                              interpolation=cv2.INTER_AREA), (0, 0), local * k)
        small_s = cv2.GaussianBlur(cv2.resize(lab * m[:, :, None], size, interpolation=cv2.INTER_AREA),
                                   (0, 0), local * k)
        shift = (small_d - small_s) / np.maximum(small_m, 1e-3)[:, :, None]
        shift[small_m < 1e-3] = 0.0
        if memory is not None:
            old = memory.get("shift")
            if old is not None:  # the face box moves with the face: the old map, resized, lines up
                old = cv2.resize(old, (shift.shape[1], shift.shape[0]), interpolation=cv2.INTER_LINEAR)
                shift = COLOUR_MEMORY * old + (1 - COLOUR_MEMORY) * shift
            memory["shift"] = shift
        lab += np.clip(cv2.resize(shift, (w, h), interpolation=cv2.INTER_LINEAR), -40.0, 40.0)
    return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)


def blend_into(frame: np.ndarray, face: np.ndarray, alpha: np.ndarray, x0: int, y0: int) -> None:
    """frame[box] = face * alpha + frame[box] * (1 - alpha), in place."""
    h, w = alpha.shape
    region = frame[y0:y0 + h, x0:x0 + w]
    a = alpha[:, :, None]
    region[:] = np.clip(region + a * (face.astype(np.float32) - region), 0, 255).astype(np.uint8)


def blend_multiband(frame: np.ndarray, face: np.ndarray, alpha: np.ndarray, x0: int, y0: int,
                    levels: int | None = None) -> None:
    """Burt and Adelson's multi-band blend, in place: each band of a Laplacian pyramid blended with the mask
    blurred to that band's scale, so coarse light blends over a wide zone and fine detail over a narrow one.
    The face image is the target's outside the mask first, so nothing from outside the face bleeds in."""
    h, w = alpha.shape
    region = frame[y0:y0 + h, x0:x0 + w]
    target = region.astype(np.float32)
    source = np.where(alpha[:, :, None] > 0.01, face.astype(np.float32), target)
    if levels is None:
        levels = int(np.clip(np.log2(max(min(h, w), 1) / 16.0), 1, 5))
    gt, gs, gm = [target], [source], [alpha.astype(np.float32)]
    for _ in range(levels):
        gt.append(cv2.pyrDown(gt[-1]))
        gs.append(cv2.pyrDown(gs[-1]))
        gm.append(cv2.pyrDown(gm[-1]))
    out = gs[-1] * gm[-1][:, :, None] + gt[-1] * (1.0 - gm[-1][:, :, None])
    for i in range(levels - 1, -1, -1):
        size = (gt[i].shape[1], gt[i].shape[0])
        lap_t = gt[i] - cv2.pyrUp(gt[i + 1], dstsize=size)
        lap_s = gs[i] - cv2.pyrUp(gs[i + 1], dstsize=size)
        m = gm[i][:, :, None]
        out = cv2.pyrUp(out, dstsize=size) + lap_s * m + lap_t * (1.0 - m)
    region[:] = np.clip(out, 0, 255).astype(np.uint8)


def face_box(pts: np.ndarray, frame_shape: tuple[int, ...], margin: float = 0.08) -> tuple[int, int, int, int] | None:
    """Integer box (x0, y0, w, h) around the face oval plus a margin, clipped to the frame; None if empty."""
    lo, hi = pts[FACE_OVAL].min(0), pts[FACE_OVAL].max(0)
    pad = (hi - lo).max() * margin
    x0, y0 = int(max(0, np.floor(lo[0] - pad))), int(max(0, np.floor(lo[1] - pad)))
    x1 = int(min(frame_shape[1], np.ceil(hi[0] + pad)))
    y1 = int(min(frame_shape[0], np.ceil(hi[1] + pad)))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    return x0, y0, x1 - x0, y1 - y0


class FaceSwapper:
    """Puts the face of one source photo onto faces in target frames. Not thread-safe: one per worker."""

    def __init__(self, models_dir: Path | None = None, threads: int = 1) -> None:
        self.landmarker = FaceLandmarker(models_dir, threads)
        self.source: _Source | None = None
        self.face_models: Any = None  # face_models.FaceModels: enhancer, occluder, parser (make_swapper sets it)
        self.models_dir, self.threads = models_dir, threads
        self._hands: Any = None  # hands.HandFinder, made on the first request for a hand mask
        self.source_glasses = False  # whether the source photo's face wears glasses (glasses.py)
        self._irises: Any = None  # iris.IrisFinder, made on the first request to follow the target's gaze

    # -- source -----------------------------------------------------------------------------------------
    def _largest_face(self, image_bgr: np.ndarray, what: str) -> np.ndarray:
        if image_bgr is None or image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
            raise ValueError(f"the {what} must be an HxWx3 uint8 BGR image")
        detections = self.landmarker.detect(image_bgr)
        meshes = [m for m in (self.landmarker.landmarks_from_detection(image_bgr, d) for d in detections) if present(m)]
        if not meshes:
            raise NoFaceError(f"no face found in the {what}")
        return max(meshes, key=lambda m: float(np.ptp(m.landmarks, axis=0).prod())).landmarks

    def set_source(self, source_bgr: np.ndarray, glasses: str = "source") -> None:
        """Detect and landmark the source face once; raises NoFaceError when the photo has none. With
        `glasses` "target" or "none", glasses the source wears are taken out of the photo first."""
        pts = self._largest_face(source_bgr, "source photo")
        from genstudio.faceswap.glasses import has_glasses, remove_glasses

        self.source_glasses = has_glasses(source_bgr, pts)
        if glasses != "source" and self.source_glasses:
            source_bgr = remove_glasses(source_bgr, pts)
        lo, hi = pts.min(0), pts.max(0)
        scale = _SOURCE_FACE_SIZE / float((hi - lo).max())
        pad = (hi - lo).max() * 0.3
        x0, y0 = int(max(0, lo[0] - pad)), int(max(0, lo[1] - pad))
        x1 = int(min(source_bgr.shape[1], hi[0] + pad))
        y1 = int(min(source_bgr.shape[0], hi[1] + pad))
        crop = source_bgr[y0:y1, x0:x1]
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        image = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        local = ((pts - np.array([x0, y0], np.float32)) * scale).astype(np.float32)
        triangles = delaunay(local)
        turn = face_turn(local)
        self.source = _Source(image=np.ascontiguousarray(image), pts=local, triangles=triangles,
                              eyes=eye_openness(local), src_triangles=source_far_side(triangles, turn), turn=turn)

    # -- tracking -----------------------------------------------------------------------------------------
    def new_track(self, options: SwapOptions) -> Track:
        track = Track(options=options)
        if options.reference_bgr is not None:
            pts = self._largest_face(options.reference_bgr, "reference photo")
            track.reference = face_descriptor(options.reference_bgr, pts)
        return track

    def _new_face(self, track: Track, frame: np.ndarray, pts: np.ndarray, order: int) -> _Face:
        smoother = LandmarkSmoother(track.fps) if track.options.smoothing else None
        face = _Face(ident=track.next_ident, order=order, raw=pts, smoothed=smoother(pts) if smoother else pts,
                     smoother=smoother)
        track.next_ident += 1
        face.descriptor = face_descriptor(frame, pts)
        return face

    def update(self, frame_bgr: np.ndarray, track: Track) -> list[_Face]:
        """Advance the track by one frame; the faces visible in it."""
        kept: list[_Face] = []
        for face in track.faces:
            result = self.landmarker.mesh(frame_bgr, roi_from_landmarks(face.raw))
            if not present(result):
                continue
            face.raw = result.landmarks
            face.smoothed = face.smoother(face.raw) if face.smoother else face.raw
            if any(_box_iou(face.box(), other.box()) > 0.5 for other in kept):
                continue  # two tracks converged on one face: keep the older
            kept.append(face)
        if not kept or track.frame_index % _DETECT_EVERY == 0:
            fresh = []
            small = track.options.small_faces and track.frame_index % small_face_every(frame_bgr.shape) == 0
            for det in self.landmarker.detect(frame_bgr, min_face=MIN_FACE if small else None,
                                              known=[f.box() for f in kept], memory=track.search):
                if any(_box_iou(det.box, f.box()) > _MATCH_IOU for f in kept + fresh):
                    continue
                result = self.landmarker.landmarks_from_detection(frame_bgr, det)
                if present(result) and not any(_box_iou(np.concatenate([result.landmarks.min(0),
                                                                        result.landmarks.max(0)]), f.box()) > _MATCH_IOU
                                               for f in kept + fresh):
                    fresh.append(self._new_face(track, frame_bgr, result.landmarks, order=-1))
            for face in sorted(fresh, key=lambda f: float(f.raw[:, 0].mean())):
                face.order = track.next_order
                track.next_order += 1
            self._reidentify(track, kept, fresh)
            kept.extend(fresh)
        track.faces = kept
        track.frame_index += 1
        return kept

    @staticmethod
    def _reidentify(track: Track, kept: list[_Face], fresh: list[_Face]) -> None:
        """A face that comes back after leaving gets a new track; when the indexed target is not in view and a
        new face looks like it, that face takes the target's index."""
        index = track.options.target_face
        if index is None or track.target is None or not fresh or any(f.order == index for f in kept):
            return
        best = max(fresh, key=lambda f: face_similarity(f.descriptor, track.target))
        if face_similarity(best.descriptor, track.target) >= REID_SIMILARITY:
            best.order = index

    def select(self, faces: list[_Face], track: Track) -> list[_Face]:
        options = track.options
        if not faces:
            return []
        if options.many_faces:
            return faces
        if track.reference is not None:
            return [max(faces, key=lambda f: face_similarity(f.descriptor, track.reference))]
        if options.target_face is not None:
            chosen = [f for f in faces if f.order == options.target_face]
            if chosen and track.target is None:
                track.target = chosen[0].descriptor
            return chosen
        return [max(faces, key=lambda f: f.area())]

    # -- rendering ----------------------------------------------------------------------------------------
    def _iris_finder(self) -> Any:
        if self._irises is None:
            from genstudio.faceswap.iris import IrisFinder

            self._irises = IrisFinder(self.models_dir, self.threads)
        return self._irises

    def _gaze_points(self, frame: np.ndarray, pts: np.ndarray, memory: dict | None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None] | None:
        """follow_gaze: (target points with its iris centres as points 468-469 in frame pixels, the source's
        likewise, the triangulation, its far-half variant); None when the source's irises are not known.
        An eye whose iris is not seen this frame (closed, or found outside the eye) gets the place the
        source's iris has in its own eye; in a video the centres are smoothed over frames."""
        src = self.source
        if not src.iris_tried:
            src.iris_tried = True
            found = self._iris_finder().irises(src.image, src.pts)
            if all(c is not None for c in found):
                src.iris = np.array(found, np.float32)
                extended = np.concatenate([src.pts, src.iris.reshape(-1, 2)])
                src.iris_triangles = delaunay(extended)
                src.iris_src_triangles = source_far_side(src.iris_triangles, src.turn)
        if src.iris is None:
            return None
        seen = self._iris_finder().irises(frame, pts)
        centres = np.array([c[0] if c is not None else iris_in(pts, eye, src.iris[eye, 0], src.pts)
                            for eye, c in enumerate(seen)], np.float32)
        if memory is not None:
            old = memory.get("iris_offset")  # smoothed in the eyes' own frames, so head motion is not lagged
            offset = np.array([c - eye_frame(pts, e)[0] for e, c in enumerate(centres)], np.float32)
            if old is not None:
                offset = 0.5 * old + 0.5 * offset
            memory["iris_offset"] = offset
            centres = np.array([eye_frame(pts, e)[0] + offset[e] for e in range(2)], np.float32)
        # The source's iris moved whole to the target's centre (its rim scaled with the eye), so it keeps its
        # round shape instead of stretching between its old place and the new.
        irises = []
        for e in range(2):
            ratio = eye_frame(pts, e)[2] / eye_frame(src.pts, e)[2]
            irises.append(centres[e] + (src.iris[e] - src.iris[e, 0]) * ratio)
        return (np.concatenate([pts, *irises]), np.concatenate([src.pts, src.iris.reshape(-1, 2)]),
                src.iris_triangles, src.iris_src_triangles)

    def render_face(self, frame: np.ndarray, pts: np.ndarray, memory: dict | None = None,
                    blend: str = "feather", gaze: bool = False) -> bool:
        """Swap the source face onto the face with landmarks `pts`, in place. False when it is off-frame.
        `memory`: the tracked face's colour state (colour_transfer), None for a still.

        A face larger than WORK_SIDE pixels is rendered at that working size (warp, masks, colour statistics)
        and only the blend runs at the frame's resolution: the source face holds about _SOURCE_FACE_SIZE
        pixels of detail, so a bigger working size would add cost and nothing else (1080p close-ups)."""
        src = self.source
        box = face_box(pts, frame.shape)
        if box is None:
            return False
        x0, y0, w, h = box
        scale = min(1.0, WORK_SIDE / max(w, h))
        ws, hs = max(4, round(w * scale)), max(4, round(h * scale))
        to_local = np.array([ws / w, hs / h], np.float32)
        local = (pts - np.array([x0, y0], np.float32)) * to_local
        points = self._gaze_points(frame, pts, memory) if gaze else None
        if points is None:
            map_x, map_y = warp_maps(local, src.pts, src.triangles, 0, 0, ws, hs, src.src_triangles)
        else:
            target, source, triangles, src_triangles = points
            map_x, map_y = warp_maps((target - np.array([x0, y0], np.float32)) * to_local, source, triangles,
                                     0, 0, ws, hs, src_triangles)
        warped = cv2.remap(src.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        alpha, core = face_mask(local, 0, 0, ws, hs, eye_keep_weights(pts, src.eyes))
        region = frame[y0:y0 + h, x0:x0 + w]
        small = region if scale == 1.0 else cv2.resize(region, (ws, hs), interpolation=cv2.INTER_AREA)
        face_px = float(np.ptp(local[FACE_OVAL], axis=0).max())
        warped = colour_transfer(warped, small, core, local=LOCAL_COLOUR * face_px, memory=memory)
        if scale != 1.0:
            warped = cv2.resize(warped, (w, h), interpolation=cv2.INTER_LINEAR)
            alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)
        (blend_multiband if blend == "multiband" else blend_into)(frame, warped, alpha, x0, y0)
        return True

    def keep_target_glasses(self, target: np.ndarray, out: np.ndarray, face: _Face) -> bool:
        """When the target face wears glasses (a running score, so one frame does not switch it), keep
        their frame on top of the swap."""
        from genstudio.faceswap.glasses import GLASSES_SCORE, eye_band, glasses_score, keep_frame

        band = eye_band(target, face.smoothed)  # one black-hat for the score and the frame
        score = glasses_score(target, face.smoothed, band)
        face.glasses = score if face.glasses < 0 else 0.7 * face.glasses + 0.3 * score
        return face.glasses >= GLASSES_SCORE and keep_frame(target, out, face.smoothed, band)

    def keep_hands(self, target: np.ndarray, out: np.ndarray, pts: np.ndarray) -> bool:
        """Where a hand covers the face with landmarks `pts`, put the target's pixels back into `out`."""
        box = face_box(pts, out.shape, margin=0.15)
        if box is None:
            return False
        if self._hands is None:
            from genstudio.faceswap.hands import HandFinder

            self._hands = HandFinder(self.models_dir, self.threads)
        mask = self._hands.covering(target, box)
        if mask is None:
            return False
        x0, y0, w, h = box
        part = (slice(y0, y0 + h), slice(x0, x0 + w))
        before = target[part].astype(np.float32)
        out[part] = np.clip(before + (1.0 - mask[:, :, None]) * (out[part].astype(np.float32) - before), 0, 255
                            ).astype(np.uint8)
        return True

    def swap_frame(self, frame_bgr: np.ndarray, track: Track) -> tuple[np.ndarray, int]:
        """(output frame, faces swapped). A frame with no face to swap is returned as is (the same array).

        A face that appears after the first frame (one that comes back into view, or a new one) fades in over
        FADE_IN_SECONDS instead of popping on in one frame."""
        if self.source is None:
            raise RuntimeError("call set_source() before swapping")
        first = track.frame_index == 0
        chosen = self.select(self.update(frame_bgr, track), track)
        if not chosen:
            return frame_bgr, 0
        out = frame_bgr.copy()
        fade_frames = max(1, round(FADE_IN_SECONDS * track.fps)) if track.options.smoothing else 1
        swapped = 0
        for face in chosen:
            if face.shown == 0 and first:
                face.shown = fade_frames  # in view from the start: no fade
            opacity = min(1.0, (face.shown + 1) / fade_frames)
            # Fading: what the frame held around the face before it was drawn (only that part is copied; the
            # face models reach a little further than the engine's own box, hence the wider margin).
            box = face_box(face.smoothed, out.shape, margin=0.15) if opacity < 1.0 else None
            part = (slice(box[1], box[1] + box[3]), slice(box[0], box[0] + box[2])) if box else None
            before = out[part].copy() if part else None
            memory = face.colour if track.options.smoothing else None
            if not self.render_face(out, face.smoothed, memory, track.options.blend, track.options.follow_gaze):
                continue
            if self.face_models is not None:
                self.face_models.apply(frame_bgr, out, face.smoothed, track.options)
            if track.options.glasses == "target":
                self.keep_target_glasses(frame_bgr, out, face)
            if track.options.hand_mask:
                self.keep_hands(frame_bgr, out, face.smoothed)
            swapped += 1
            face.shown += 1
            if part is not None:
                out[part] = cv2.addWeighted(out[part], opacity, before, 1.0 - opacity, 0.0)
        return (out, swapped) if swapped else (frame_bgr, 0)


def swap_image(swapper: FaceSwapper, target_bgr: np.ndarray, options: SwapOptions) -> tuple[np.ndarray, int]:
    """Swap faces in one image (no temporal smoothing)."""
    if target_bgr is None or target_bgr.ndim != 3 or target_bgr.shape[2] != 3 or target_bgr.dtype != np.uint8:
        raise ValueError("the target must be an HxWx3 uint8 BGR image")
    single = SwapOptions(target_face=options.target_face, many_faces=options.many_faces,
                         reference_bgr=options.reference_bgr, smoothing=False, small_faces=options.small_faces,
                         enhance=options.enhance, occlusion_mask=options.occlusion_mask,
                         region_mask=options.region_mask, hand_mask=options.hand_mask, glasses=options.glasses,
                         blend=options.blend, follow_gaze=options.follow_gaze)
    return swapper.swap_frame(target_bgr, swapper.new_track(single))
