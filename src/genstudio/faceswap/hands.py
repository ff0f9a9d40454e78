"""Hands in front of a face, found with MediaPipe's palm detector and 21-point hand landmarks (the lite .tflite
files of the mediapipe 0.10.21 wheel, run with LiteRT), so a swap keeps the target's hand where it covers the
face. No user model is needed (the XSeg-style occluder of face_models.py does more, when a user has one).

Re-implements the parts of MediaPipe's hand graph the models need: letterboxing, the 2016 SSD anchors,
weighted NMS, the rotated hand ROI from the palm (wrist -> middle-finger knuckle upright, 2.6x, shifted
towards the fingers), and the landmarks' back-projection to frame pixels. The hand's mask is drawn from its
skeleton: the palm's polygon and each finger as a thick stroke as wide as the knuckles are apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from genstudio.faceswap.landmarks import (
    DEFAULT_MODELS_DIR,
    _interpreter,
    _sigmoid,
    _weighted_nms,
    check_models,
    decode_ssd,
    letterbox,
    roi_crop,
    ssd_anchors,
    to_frame,
)

PALM_FILE = "palm_detection_lite.tflite"
HAND_FILE = "hand_landmark_lite.tflite"
_PALM_SIZE = 192
_HAND_SIZE = 224
_PALM_SCORE = 0.5
_HAND_PRESENCE = 0.5
_HAND_ROI_SCALE = 2.6
_HAND_ROI_SHIFT = -0.5
SEARCH_MARGIN = 0.6  # the palm search covers the face box grown by this share of its size on each side
# 21 landmarks: 0 wrist; thumb 1-4; index 5-8; middle 9-12; ring 13-16; pinky 17-20.
PALM = np.array([0, 1, 2, 5, 9, 13, 17])
FINGERS = ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20))


_ANCHORS = ssd_anchors(((24, 2), (12, 6)))  # 2016 anchors of the 192 px palm detector: strides 8, 16, 16, 16


@dataclass
class Hand:
    landmarks: np.ndarray  # 21x2 frame pixels
    presence: float
    palm_score: float


def hand_roi(keypoints: np.ndarray, box: np.ndarray) -> tuple[float, float, float, float]:
    """MediaPipe's palm-to-hand ROI (centre x, centre y, side, angle): the palm box turned so the wrist ->
    middle-finger-knuckle line points up, shifted half its height towards the fingers, squared and 2.6x."""
    (wx, wy), (mx, my) = keypoints[0], keypoints[2]
    angle = float(np.pi / 2 - np.arctan2(-(my - wy), mx - wx))
    angle = float((angle + np.pi) % (2 * np.pi) - np.pi)
    x0, y0, x1, y1 = box
    w, h = float(x1 - x0), float(y1 - y0)
    cx = (x0 + x1) / 2 - _HAND_ROI_SHIFT * h * np.sin(angle)
    cy = (y0 + y1) / 2 + _HAND_ROI_SHIFT * h * np.cos(angle)
    return float(cx), float(cy), max(w, h) * _HAND_ROI_SCALE, angle


def hand_mask(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A float32 mask (1 on the hand) of `shape` (h, w) drawn from 21 landmarks: the palm polygon and each
    finger as a stroke about as wide as the gap between two knuckles."""
    mask = np.zeros(shape, np.uint8)
    pts = np.round(landmarks).astype(np.int32)
    knuckle = float(np.linalg.norm(landmarks[5] - landmarks[9]) + np.linalg.norm(landmarks[9] - landmarks[13])) / 2
    width = max(2, int(round(knuckle * 1.1)))
    cv2.fillConvexPoly(mask, cv2.convexHull(pts[PALM]), 1)
    for finger in FINGERS:
        chain = ([pts[0]] if finger[0] == 1 else []) + [pts[i] for i in finger]  # the thumb starts at the wrist
        for a, b in zip(chain[:-1], chain[1:], strict=True):
            cv2.line(mask, tuple(int(v) for v in a), tuple(int(v) for v in b), 1, width)
        cv2.circle(mask, tuple(int(v) for v in pts[finger[-1]]), width // 2, 1, -1)
    # The wrist goes on below the palm (the model stops at its joint): half a palm's length, palm-wide.
    palm_axis = landmarks[0] - landmarks[9]
    wrist_end = np.round(landmarks[0] + 0.5 * palm_axis).astype(np.int32)
    palm_width = int(round(float(np.linalg.norm(landmarks[5] - landmarks[17])) * 0.9))
    cv2.line(mask, tuple(int(v) for v in pts[0]), tuple(int(v) for v in wrist_end), 1, max(2, palm_width))
    return mask.astype(np.float32)


class HandFinder:
    """Palm detector + hand landmarks. Not thread-safe (one LiteRT interpreter per model)."""

    def __init__(self, models_dir: Path | None = None, threads: int = 1) -> None:
        models_dir = Path(models_dir) if models_dir is not None else DEFAULT_MODELS_DIR
        check_models(models_dir, (PALM_FILE, HAND_FILE), "hand models")
        self._palm = _interpreter(models_dir / PALM_FILE, threads)
        self._hand = _interpreter(models_dir / HAND_FILE, threads)
        self._palm_in = self._palm.get_input_details()[0]["index"]
        outs = {tuple(d["shape"]): d["index"] for d in self._palm.get_output_details()}
        self._palm_reg, self._palm_cls = outs[(1, 2016, 18)], outs[(1, 2016, 1)]
        self._hand_in = self._hand.get_input_details()[0]["index"]
        outs = sorted(self._hand.get_output_details(), key=lambda d: d["name"])  # Identity, Identity_1, ...
        self._hand_pts, self._hand_flag = outs[0]["index"], outs[1]["index"]

    def palms(self, image_bgr: np.ndarray) -> list:
        """Palm detections (box, 7 keypoints, score) in image pixels, highest score first."""
        square, offset, side = letterbox(image_bgr, _PALM_SIZE)
        rgb = cv2.cvtColor(square, cv2.COLOR_BGR2RGB).astype(np.float32) * (1.0 / 255.0)
        self._palm.set_tensor(self._palm_in, rgb[None])
        self._palm.invoke()
        scores = _sigmoid(self._palm.get_tensor(self._palm_cls)[0, :, 0])
        keep = np.flatnonzero(scores >= _PALM_SCORE)
        if not len(keep):
            return []
        boxes, kps = decode_ssd(self._palm.get_tensor(self._palm_reg)[0][keep], _ANCHORS[keep], _PALM_SIZE, 7,
                                offset, side)
        return _weighted_nms(boxes, kps, scores[keep].astype(np.float32))

    def landmarks(self, frame_bgr: np.ndarray, roi: tuple[float, float, float, float]) -> tuple[np.ndarray, float]:
        """(21x2 frame pixels, presence) inside a rotated square ROI (centre x, centre y, side, angle)."""
        crop, inverse = roi_crop(frame_bgr, roi, _HAND_SIZE, cv2.BORDER_CONSTANT)
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) * (1.0 / 255.0)
        self._hand.set_tensor(self._hand_in, rgb[None])
        self._hand.invoke()
        pts = self._hand.get_tensor(self._hand_pts).reshape(21, 3)[:, :2]
        presence = float(self._hand.get_tensor(self._hand_flag).reshape(()))
        return to_frame(pts, inverse), presence

    def find(self, frame_bgr: np.ndarray, region: tuple[int, int, int, int] | None = None) -> list[Hand]:
        """Hands in `region` (x0, y0, w, h; the whole frame when None), landmarks in frame pixels."""
        x0, y0, w, h = region if region is not None else (0, 0, frame_bgr.shape[1], frame_bgr.shape[0])
        if w < 16 or h < 16:
            return []
        hands = []
        for det in self.palms(frame_bgr[y0:y0 + h, x0:x0 + w]):
            offset = np.array([x0, y0], np.float32)
            roi = hand_roi(det.keypoints + offset, det.box + np.tile(offset, 2))
            pts, presence = self.landmarks(frame_bgr, roi)
            if presence >= _HAND_PRESENCE:
                hands.append(Hand(pts, presence, det.score))
        return hands

    def covering(self, frame_bgr: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray | None:
        """Over the face box (x0, y0, w, h): 1 where a hand covers the face, soft-edged; None when no hand
        reaches into the box. The palms are searched around the face (SEARCH_MARGIN of its size each side)."""
        x0, y0, w, h = box
        fh, fw = frame_bgr.shape[:2]
        mx, my = round(w * SEARCH_MARGIN), round(h * SEARCH_MARGIN)
        sx0, sy0 = max(0, x0 - mx), max(0, y0 - my)
        sx1, sy1 = min(fw, x0 + w + mx), min(fh, y0 + h + my)
        hands = self.find(frame_bgr, (sx0, sy0, sx1 - sx0, sy1 - sy0))
        if not hands:
            return None
        mask = np.zeros((h, w), np.float32)
        for hand in hands:
            mask = np.maximum(mask, hand_mask(hand.landmarks - np.array([x0, y0], np.float32), (h, w)))
        if not mask.any():
            return None
        feather = max(1.0, 0.015 * max(w, h))
        mask = cv2.GaussianBlur(cv2.dilate(mask, np.ones((3, 3), np.uint8)), (0, 0), feather)
        return np.clip(mask, 0.0, 1.0)
