"""Irises, found with MediaPipe's iris landmark model (`iris_landmark.tflite` of the mediapipe 0.10.21 wheel,
Apache-2.0, run with LiteRT): the eye's crop from the face mesh's eye corners (2.3 eye-widths, turned level),
the subject's left eye flipped as the model expects, out 5 iris points (the centre and four on the rim).

The face mesh alone places no iris; the attention mesh that refines eyes and irises needs MediaPipe's own
TFLite custom ops, which LiteRT does not have. A swap with `follow_gaze` adds each eye's iris centre to the
warp's points, so the source's iris lands where the target's is: the result looks where the target looks.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from genstudio.faceswap.landmarks import (
    DEFAULT_MODELS_DIR,
    LEFT_EYE,
    RIGHT_EYE,
    _interpreter,
    check_models,
    roi_crop,
    to_frame,
)

IRIS_FILE = "iris_landmark.tflite"
_SIZE = 64
_ROI_SCALE = 2.3
EYE_CORNERS = ((33, 133), (362, 263))  # image-left eye (the subject's right), image-right eye: outer, inner
MIN_OPEN = 0.12  # eye aspect ratio under which an eye is taken as closed (no iris to follow)


class IrisFinder:
    """Iris centres of a face's two eyes. Not thread-safe (one LiteRT interpreter)."""

    def __init__(self, models_dir: Path | None = None, threads: int = 1) -> None:
        models_dir = Path(models_dir) if models_dir is not None else DEFAULT_MODELS_DIR
        check_models(models_dir, (IRIS_FILE,), "iris model")
        self._net = _interpreter(models_dir / IRIS_FILE, threads)
        self._in = self._net.get_input_details()[0]["index"]
        self._iris = {d["name"]: d["index"] for d in self._net.get_output_details()}["output_iris"]

    def _eye(self, frame: np.ndarray, a: np.ndarray, b: np.ndarray, flip: bool) -> np.ndarray:
        centre = (a + b) / 2
        side = max(float(np.linalg.norm(b - a)) * _ROI_SCALE, 1e-3)
        crop, inverse = roi_crop(frame, (float(centre[0]), float(centre[1]), side,
                                         float(np.arctan2(b[1] - a[1], b[0] - a[0]))), _SIZE)
        if flip:
            crop = crop[:, ::-1]
        rgb = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_BGR2RGB).astype(np.float32) * (1.0 / 255.0)
        self._net.set_tensor(self._in, rgb[None])
        self._net.invoke()
        pts = self._net.get_tensor(self._iris).reshape(5, 3)[:, :2].copy()
        if flip:
            pts[:, 0] = _SIZE - pts[:, 0]
        return to_frame(pts, inverse)

    def irises(self, frame: np.ndarray, pts: np.ndarray) -> list[np.ndarray | None]:
        """[image-left eye's iris, image-right eye's], each 5x2 frame pixels (the centre, then four points on
        the rim); None for an eye that is closed or whose iris centre the model put outside the eye's
        opening."""
        from genstudio.faceswap.landmarks import eye_openness

        out: list[np.ndarray | None] = []
        for (outer, inner), contour, openness, flip in zip(EYE_CORNERS, (RIGHT_EYE, LEFT_EYE), eye_openness(pts),
                                                          (False, True), strict=True):
            if openness < MIN_OPEN:
                out.append(None)
                continue
            iris = self._eye(frame, pts[outer], pts[inner], flip)
            inside = cv2.pointPolygonTest(pts[contour].astype(np.float32), (float(iris[0, 0]), float(iris[0, 1])),
                                          False) >= 0
            out.append(iris if inside else None)
        return out
