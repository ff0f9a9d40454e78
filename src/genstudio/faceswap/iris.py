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

from genstudio.faceswap.landmarks import DEFAULT_MODELS_DIR, FETCH_COMMAND, LEFT_EYE, RIGHT_EYE, _interpreter

IRIS_FILE = "iris_landmark.tflite"
_SIZE = 64
_ROI_SCALE = 2.3
EYE_CORNERS = ((33, 133), (362, 263))  # image-left eye (the subject's right), image-right eye: outer, inner
MIN_OPEN = 0.12  # eye aspect ratio under which an eye is taken as closed (no iris to follow)


def check_iris_model(models_dir: Path) -> None:
    if not (models_dir / IRIS_FILE).is_file():
        raise FileNotFoundError(f"iris model missing in {models_dir}: {IRIS_FILE}; run `{FETCH_COMMAND}` "
                                "(or `make install`) to fetch it")


class IrisFinder:
    """Iris centres of a face's two eyes. Not thread-safe (one LiteRT interpreter)."""

    def __init__(self, models_dir: Path | None = None, threads: int = 1) -> None:
        models_dir = Path(models_dir) if models_dir is not None else DEFAULT_MODELS_DIR
        check_iris_model(models_dir)
        self._net = _interpreter(models_dir / IRIS_FILE, threads)
        self._in = self._net.get_input_details()[0]["index"]
        self._iris = {d["name"]: d["index"] for d in self._net.get_output_details()}["output_iris"]

    def _eye(self, frame: np.ndarray, a: np.ndarray, b: np.ndarray, flip: bool) -> np.ndarray:
        centre = (a + b) / 2
        width = float(np.linalg.norm(b - a)) * _ROI_SCALE
        angle = float(np.degrees(np.arctan2(b[1] - a[1], b[0] - a[0])))
        matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, _SIZE / max(width, 1e-3))
        matrix[:, 2] += _SIZE / 2 - centre
        crop = cv2.warpAffine(frame, matrix, (_SIZE, _SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if flip:
            crop = crop[:, ::-1]
        rgb = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_BGR2RGB).astype(np.float32) * (1.0 / 255.0)
        self._net.set_tensor(self._in, rgb[None])
        self._net.invoke()
        pts = self._net.get_tensor(self._iris).reshape(5, 3)[:, :2].copy()
        if flip:
            pts[:, 0] = _SIZE - pts[:, 0]
        inverse = cv2.invertAffineTransform(matrix)
        return (pts @ inverse[:, :2].T + inverse[:, 2]).astype(np.float32)

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
