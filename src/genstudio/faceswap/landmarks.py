"""Face detection (BlazeFace short range) and the 468-point face mesh, run from MediaPipe's .tflite files with LiteRT.

Re-implements the parts of MediaPipe's graph the models need: letterboxing, anchors, weighted NMS, the rotated
mesh ROI (from a detection or from the previous frame's landmarks) and the back-projection to frame pixels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

DEFAULT_MODELS_DIR = Path(__file__).resolve().parent / "models"
DETECTOR_FILE = "face_detection_short_range.tflite"
MESH_FILE = "face_landmark.tflite"
FETCH_COMMAND = "python scripts/fetch_face_models.py"

# Mesh indices (MediaPipe canonical face mesh topology).
FACE_OVAL = np.array([10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
                      152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109])
INNER_LIPS = np.array([78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95])
RIGHT_EYE = np.array([33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7])  # image left
LEFT_EYE = np.array([263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249])
NOSE_TIP, MOUTH_RIGHT, MOUTH_LEFT = 4, 61, 291

_DET_SIZE = 128
_MESH_SIZE = 192
_SCORE_THRESHOLD = 0.5
_NMS_IOU = 0.3
_PRESENCE_THRESHOLD = 0.5
_ROI_SCALE = 1.5
_TILE = 0.6
SMALL_FACE_ZOOM = 6  # a tile about 6 face-widths wide shows the detector a face of ~21 of its 128 px
SMALL_FACE_SHARE = 0.4  # in the pyramid, a face wider than this share of its tile is left to coarser levels
SMALL_FACE_STILL = 10  # grey levels: a tile whose 8x8-cell means all moved less than this since it was searched
_STILL_CELL = 8  # ...is unchanged (a 24 px face entering it moves its cells by tens of levels)
SMALL_FACE_STRIDE = 0.55  # pyramid tiles this share of a tile apart: a face up to SMALL_FACE_SHARE wide is whole in one
SMALL_FACE_SCORE = 0.65  # and a zoomed-in detection needs a surer score than the whole frame's


def _pyramid(w: int, h: int, min_face: int) -> list[int]:
    """Square tile sides from about 60% of the frame's short side down to SMALL_FACE_ZOOM x `min_face`,
    each level about half the one above."""
    smallest = max(_DET_SIZE, SMALL_FACE_ZOOM * min_face)
    side, sides = round(min(w, h) * _TILE), []
    while side >= smallest:
        sides.append(side)
        side //= 2
    if smallest < min(w, h) and (not sides or sides[-1] > smallest * 1.2):
        sides.append(smallest)
    return sides


def ssd_anchors(layers: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Anchor centres (x, y, in the unit square) of MediaPipe's SSD detectors: for each (grid, anchors per
    cell), a grid x grid layer. BlazeFace short range: ((16, 2), (8, 6)), 896 anchors."""
    centres = []
    for grid, per_cell in layers:
        ys, xs = np.mgrid[0:grid, 0:grid]
        cell = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(cell, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)


_ANCHORS = ssd_anchors(((16, 2), (8, 6)))


def letterbox(image_bgr: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(size x size BGR square with the image scaled to fit and centred, black around it; the offset of the
    image in the square as a share of `size`; the image's longer side): what a detector is given."""
    h, w = image_bgr.shape[:2]
    side = max(h, w)
    sw, sh = max(1, round(w * size / side)), max(1, round(h * size / side))
    small = cv2.resize(image_bgr, (sw, sh), interpolation=cv2.INTER_AREA)
    left, top = (size - sw) // 2, (size - sh) // 2
    square = cv2.copyMakeBorder(small, top, size - sh - top, left, size - sw - left, cv2.BORDER_CONSTANT,
                                value=(0, 0, 0))
    return square, np.array([left, top], np.float32) / size, side


def decode_ssd(reg: np.ndarray, anchors: np.ndarray, size: int, keypoints: int, offset: np.ndarray,
               side: int) -> tuple[np.ndarray, np.ndarray]:
    """(boxes Nx4, keypoints NxKx2) in image pixels from the regressors of the kept anchors (box centre and
    size, then the keypoints, in pixels of the `size` input) and the letterbox's offset and side."""
    reg = reg / size
    cx, cy = anchors[:, 0] + reg[:, 0], anchors[:, 1] + reg[:, 1]
    boxes = np.stack([cx - reg[:, 2] / 2, cy - reg[:, 3] / 2, cx + reg[:, 2] / 2, cy + reg[:, 3] / 2], axis=1)
    kps = anchors[:, None, :] + reg[:, 4:4 + 2 * keypoints].reshape(-1, keypoints, 2)
    return ((boxes - np.tile(offset, 2)) * side).astype(np.float32), ((kps - offset) * side).astype(np.float32)


def roi_crop(frame_bgr: np.ndarray, roi: tuple[float, float, float, float], size: int,
             border: int = cv2.BORDER_REPLICATE) -> tuple[np.ndarray, np.ndarray]:
    """(size x size crop of the rotated square ROI (centre x, centre y, side, angle in radians: the crop's x
    axis), the 2x3 affine that brings crop pixels back to the frame)."""
    cx, cy, side, angle = roi
    c, s = np.cos(angle), np.sin(angle)
    ux, uy = np.array([c, s]) * side / 2, np.array([-s, c]) * side / 2
    centre = np.array([cx, cy])
    src = np.float32([centre - ux - uy, centre + ux - uy, centre - ux + uy])
    affine = cv2.getAffineTransform(src, np.float32([[0, 0], [size, 0], [0, size]]))
    crop = cv2.warpAffine(frame_bgr, affine, (size, size), flags=cv2.INTER_LINEAR, borderMode=border)
    return crop, cv2.invertAffineTransform(affine)


def to_frame(pts: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """Points in a crop's pixels back to the frame's with roi_crop's inverse affine."""
    return (pts @ inverse[:, :2].T + inverse[:, 2]).astype(np.float32)


@dataclass
class Detection:
    box: np.ndarray        # x0, y0, x1, y1 in frame pixels
    keypoints: np.ndarray  # 6x2 frame pixels: right eye, left eye, nose tip, mouth, right ear, left ear
    score: float


@dataclass
class MeshResult:
    landmarks: np.ndarray  # 468x2 float32 frame pixels
    presence: float        # face-presence probability of the crop


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def _interpreter(path: Path, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    # LiteRT announces its XNNPACK delegate on fd 2 from C++; keep the CLI's stderr clean.
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            interpreter = Interpreter(model_path=str(path), num_threads=threads)
            interpreter.allocate_tensors()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return interpreter


def check_models(models_dir: Path, names: tuple[str, ...] = (DETECTOR_FILE, MESH_FILE),
                 what: str = "face models") -> None:
    """FileNotFoundError naming the fetch command when any of the .tflite files `names` is missing."""
    missing = [name for name in names if not (models_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{what} missing in {models_dir}: {', '.join(missing)}; "
                                f"run `{FETCH_COMMAND}` (or `make install`) to fetch them")


def models_present(*names: str) -> bool:
    """Whether the built-in .tflite files `names` are installed (scripts/fetch_face_models.py)."""
    return all((DEFAULT_MODELS_DIR / name).is_file() for name in names)


class FaceLandmarker:
    """Detector + mesh. Not thread-safe (one LiteRT interpreter per model)."""

    def __init__(self, models_dir: Path | None = None, threads: int = 1) -> None:
        models_dir = Path(models_dir) if models_dir is not None else DEFAULT_MODELS_DIR
        check_models(models_dir)
        self._det = _interpreter(models_dir / DETECTOR_FILE, threads)
        self._mesh = _interpreter(models_dir / MESH_FILE, threads)
        self._det_in = self._det.get_input_details()[0]["index"]
        outs = {d["name"]: d["index"] for d in self._det.get_output_details()}
        self._det_reg, self._det_cls = outs["regressors"], outs["classificators"]
        self._mesh_in = self._mesh.get_input_details()[0]["index"]
        outs = {tuple(d["shape"]): d["index"] for d in self._mesh.get_output_details()}
        self._mesh_pts, self._mesh_flag = outs[(1, 1, 1, 1404)], outs[(1, 1, 1, 1)]

    def detect(self, frame_bgr: np.ndarray, tiles: bool = True, min_face: int | None = None,
               known: list[np.ndarray] | None = None, memory: dict | None = None) -> list[Detection]:
        """All faces in the frame, highest score first. The short-range model misses faces under about
        1/8 of the frame's long side; when the whole frame gives nothing, four overlapping 60% tiles (1.7x
        zoom) are searched too. With `min_face` (px), a pyramid of overlapping square tiles is searched as
        well, down to tiles about SMALL_FACE_ZOOM times `min_face`, so faces down to that size are found
        beside larger ones (the cost grows with the frame's area over `min_face` squared); tiles that lie
        inside a face already found (by the whole-frame pass, or `known` boxes x0, y0, x1, y1 of faces
        being tracked) are not searched: no other whole face fits there.

        `memory` (one dict per video): the pyramid's tiles as they looked when last searched, so a tile that
        has not changed since (SMALL_FACE_STILL) and held no face then is not searched again: it holds no face
        that search did not see. A tile where a face was found is always searched again."""
        boxes, kps, scores = self._detect_raw(frame_bgr)
        h, w = frame_bgr.shape[:2]
        found = [(boxes, kps, scores)]
        if min_face is not None:
            covered = [*boxes[scores >= SMALL_FACE_SCORE], *(known or [])]
            looks = None
            if memory is not None:
                grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
                looks = (memory, cv2.resize(grey, (max(1, w // _STILL_CELL), max(1, h // _STILL_CELL)),
                                            interpolation=cv2.INTER_AREA))
            for side in _pyramid(w, h, min_face):
                found += self._detect_tiles(frame_bgr, side, side, small_only=True, covered=covered, looks=looks)
        elif not len(scores) and tiles and min(h, w) >= 2 * _DET_SIZE:
            found += self._detect_tiles(frame_bgr, round(w * _TILE), round(h * _TILE))
        boxes, kps, scores = (np.concatenate(parts) for parts in zip(*found, strict=True))
        return _weighted_nms(boxes, kps, scores) if len(scores) else []

    def _detect_tiles(self, frame_bgr: np.ndarray, tw: int, th: int, small_only: bool = False,
                      covered: list[np.ndarray] = (), looks: tuple[dict, np.ndarray] | None = None
                      ) -> list[tuple[np.ndarray, ...]]:
        """Detections in overlapping tiles of tw x th (half a tile apart unless `small_only`, the last one
        flush with the edge), in frame pixels; a face cut by a tile edge inside the frame is left to the
        neighbouring tile.

        With `small_only` (the small-face pyramid), only faces small in their tile and surely faces are kept:
        a face that fills much of a zoomed tile would have been found at a coarser level, and zooming into
        texture (a suit, a flag) makes the detector see faces that are not there. Those faces are at most
        SMALL_FACE_SHARE of a tile wide, so the tiles need overlap only by that much (plus a margin): they are
        SMALL_FACE_STRIDE of a tile apart (about a sixth fewer tiles at 1080p; at 640x480 and 720p the last
        tile flush with the edge leaves the count as at half a tile). A tile wholly inside one of the
        `covered` boxes (x0, y0, x1, y1) is skipped, and so is one that `looks` (the video's memory, the frame
        at 1/_STILL_CELL size) says is unchanged and empty since it was last searched."""
        h, w = frame_bgr.shape[:2]
        tw, th = min(tw, w), min(th, h)
        step = SMALL_FACE_STRIDE if small_only else 0.5
        xs = sorted({*range(0, max(1, w - tw), max(1, round(tw * step))), w - tw})
        ys = sorted({*range(0, max(1, h - th), max(1, round(th * step))), h - th})
        memory, small = looks if looks is not None else (None, None)
        c = _STILL_CELL
        out = []
        for y0 in ys:
            for x0 in xs:
                if any(b[0] <= x0 and b[1] <= y0 and x0 + tw <= b[2] and y0 + th <= b[3] for b in covered):
                    continue
                key = (w, h, tw, th, x0, y0)
                if memory is not None:
                    now = small[y0 // c:(y0 + th) // c, x0 // c:(x0 + tw) // c]
                    before = memory.get(key)
                    if (before is not None and not before[1] and before[0].shape == now.shape
                            and int(cv2.absdiff(before[0], now).max()) <= SMALL_FACE_STILL):
                        continue
                    memory[key] = (now.copy(), False)
                b, k, sc = self._detect_raw(frame_bgr[y0:y0 + th, x0:x0 + tw])
                if not len(sc):
                    continue
                inner = np.array([x0 > 0, y0 > 0, x0 + tw < w, y0 + th < h])
                margin = np.array([b[:, 0] > 2, b[:, 1] > 2, b[:, 2] < tw - 2, b[:, 3] < th - 2]).T
                whole = (margin | ~inner).all(axis=1)
                if small_only:
                    whole &= ((b[:, 2] - b[:, 0]) <= SMALL_FACE_SHARE * tw) & (sc >= SMALL_FACE_SCORE)
                offset = np.array([x0, y0], np.float32)
                out.append((b[whole] + np.tile(offset, 2), k[whole] + offset, sc[whole]))
                if memory is not None and whole.any():
                    memory[key] = (memory[key][0], True)  # a face here: search this tile again next time
        return out

    def _detect_raw(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes Nx4, keypoints Nx6x2, scores N) of the anchors over the threshold, in image pixels."""
        square, offset, side = letterbox(image_bgr, _DET_SIZE)
        rgb = cv2.cvtColor(square, cv2.COLOR_BGR2RGB).astype(np.float32) * (2.0 / 255.0) - 1.0
        self._det.set_tensor(self._det_in, rgb[None])
        self._det.invoke()
        scores = _sigmoid(self._det.get_tensor(self._det_cls)[0, :, 0])
        keep = np.flatnonzero(scores >= _SCORE_THRESHOLD)
        boxes, kps = decode_ssd(self._det.get_tensor(self._det_reg)[0][keep], _ANCHORS[keep], _DET_SIZE, 6,
                                offset, side)
        return boxes, kps, scores[keep].astype(np.float32)

    def mesh(self, frame_bgr: np.ndarray, roi: tuple[float, float, float, float]) -> MeshResult:
        """Landmarks inside a rotated square ROI (centre x, centre y, side, angle in radians)."""
        crop, inverse = roi_crop(frame_bgr, roi, _MESH_SIZE)
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) * (1.0 / 255.0)
        self._mesh.set_tensor(self._mesh_in, rgb[None])
        self._mesh.invoke()
        pts = self._mesh.get_tensor(self._mesh_pts).reshape(468, 3)[:, :2]
        presence = float(_sigmoid(self._mesh.get_tensor(self._mesh_flag).reshape(())))
        return MeshResult(to_frame(pts, inverse), presence)

    def landmarks_from_detection(self, frame_bgr: np.ndarray, det: Detection) -> MeshResult:
        """Mesh from a detection, refined once from its own landmarks (the detector's box is coarse)."""
        first = self.mesh(frame_bgr, roi_from_detection(det))
        if first.presence < _PRESENCE_THRESHOLD:
            return first
        return self.mesh(frame_bgr, roi_from_landmarks(first.landmarks))


def present(result: MeshResult) -> bool:
    return result.presence >= _PRESENCE_THRESHOLD


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0, y0 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x1, y1 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def _weighted_nms(boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray) -> list[Detection]:
    """MediaPipe's weighted NMS: each cluster of overlapping anchors becomes their score-weighted mean."""
    order = np.argsort(-scores)
    boxes, kps, scores = boxes[order], kps[order], scores[order]
    remaining = np.ones(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        cluster = remaining & (_iou(boxes[i], boxes) > _NMS_IOU)
        cluster[i] = True
        weights = scores[cluster][:, None]
        total = weights.sum()
        out.append(Detection(box=(boxes[cluster] * weights).sum(0) / total,
                             keypoints=(kps[cluster] * weights[:, :, None]).sum(0) / total,
                             score=float(scores[i])))
        remaining &= ~cluster
    return out


def roi_from_detection(det: Detection) -> tuple[float, float, float, float]:
    (rx, ry), (lx, ly) = det.keypoints[0], det.keypoints[1]
    angle = float(np.arctan2(ly - ry, lx - rx))
    x0, y0, x1, y1 = det.box
    return float((x0 + x1) / 2), float((y0 + y1) / 2), float(max(x1 - x0, y1 - y0) * _ROI_SCALE), angle


def roi_from_landmarks(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """MediaPipe's landmarks-to-ROI: axis-aligned bounds, rotation from the outer eye corners, 1.5x square."""
    (rx, ry), (lx, ly) = landmarks[33], landmarks[263]
    angle = float(np.arctan2(ly - ry, lx - rx))
    lo, hi = landmarks.min(0), landmarks.max(0)
    centre = (lo + hi) / 2
    return float(centre[0]), float(centre[1]), float((hi - lo).max() * _ROI_SCALE), angle


def eye_openness(landmarks: np.ndarray) -> tuple[float, float]:
    """Eye aspect ratios (lid gap / eye width) of the image-left and image-right eye."""
    def ratio(top: int, bottom: int, a: int, b: int) -> float:
        return float(np.linalg.norm(landmarks[top] - landmarks[bottom]) /
                     max(np.linalg.norm(landmarks[a] - landmarks[b]), 1e-6))
    return ratio(159, 145, 33, 133), ratio(386, 374, 263, 362)


def mouth_openness(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[13] - landmarks[14]) /
                 max(np.linalg.norm(landmarks[MOUTH_RIGHT] - landmarks[MOUTH_LEFT]), 1e-6))

