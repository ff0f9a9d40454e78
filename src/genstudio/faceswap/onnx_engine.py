"""Pluggable ONNX engine: a user's inswapper-style model (aligned 128x128 face + 512-d identity -> swapped face)
and face-recognition model (aligned 112x112 face -> 512-d embedding), run with onnxruntime.

Detection, tracking, smoothing, face selection, the mask (with the target's mouth interior) and the blend are
the landmark engine's; only the face itself comes from the model. No model ships with genstudio: the user points
the studio at files they have the right to use.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from genstudio.faceswap.engine import (
    ARCFACE_TEMPLATE,
    FaceSwapper,
    blend_into,
    blend_multiband,
    colour_transfer,
    eye_keep_weights,
    face_box,
    face_mask,
    five_points,
    similarity_fit,
)


def _session(path: Path, threads: int):
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _side(shape: list, default: int) -> int:
    side = shape[-1]
    return side if isinstance(side, int) and side > 0 else default


def _latent_map(path: Path) -> np.ndarray | None:
    """inswapper models keep a 512x512 identity projection as their last initializer (InsightFace applies it
    to the embedding before the model); None when the model has none or the onnx package is absent."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return None
    graph = onnx.load(str(path), load_external_data=False).graph
    if not graph.initializer:
        return None
    last = numpy_helper.to_array(graph.initializer[-1])
    return last.astype(np.float32) if last.shape == (512, 512) else None


def _blob(crop_bgr: np.ndarray, mean: float | np.ndarray, std: float | np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
    return ((rgb - mean) / std).astype(np.float32).transpose(2, 0, 1)[None]


# ArcFace's first five-point template (SimSwap's crops), 112x112.
ARCFACE_112_V1 = np.array([[39.7300, 51.1380], [72.2700, 51.1380], [56.0000, 68.4930], [42.4630, 87.0100],
                           [69.5370, 87.0100]], np.float32)
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255.0
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255.0
# How each family of swap models wants its face: the crop template (points, the side they are given for),
# the input scaling (mean, std on 0-255 RGB) and the output's (value * scale + offset = 0-255).
SWAP_STYLES = {
    "inswapper": {"template": (ARCFACE_TEMPLATE + np.array([8.0, 0.0], np.float32), 128.0),
                  "mean": 0.0, "std": 255.0, "out": (255.0, 0.0)},
    "hyperswap": {"template": (ARCFACE_TEMPLATE + np.array([8.0, 0.0], np.float32), 128.0),
                  "mean": 127.5, "std": 127.5, "out": (127.5, 127.5)},
    "simswap": {"template": (ARCFACE_112_V1, 112.0), "mean": _IMAGENET_MEAN, "std": _IMAGENET_STD,
                "out": (255.0, 0.0)},
}


class OnnxFaceSwapper(FaceSwapper):
    """FaceSwapper whose face comes from an inswapper-style ONNX model (same set_source / new_track /
    swap_frame, so swap_image and swap_video take it as is).

    Model contract: swap model inputs, told apart by rank, are the target face (1x3xSxS RGB in [0, 1], S
    usually 128, aligned to ArcFace's template) and the identity (1x512, L2-normalised, projected by the
    model's own latent map when it carries one); its output is 1x3xSxS RGB in [0, 1]. The recognition model
    takes 1x3x112x112 RGB scaled to [-1, 1] and returns 1x512."""

    def __init__(self, swap_model: Path, recognition_model: Path, models_dir: Path | None = None,
                 threads: int = 1, colour_match: bool = False, style: str = "inswapper") -> None:
        if style not in SWAP_STYLES:
            raise ValueError(f"swap model style must be one of {', '.join(SWAP_STYLES)}, got {style!r}")
        super().__init__(models_dir, threads)
        self.style = SWAP_STYLES[style]
        # inswapper-style models render the target's lighting themselves; LAB matching is there for models
        # that do not.
        self.colour_match = colour_match
        self.swap_session = _session(swap_model, threads)
        self.recognition_session = _session(recognition_model, threads)
        inputs = self.swap_session.get_inputs()
        images = [i for i in inputs if len(i.shape) == 4]
        vectors = [i for i in inputs if len(i.shape) == 2]
        if len(images) != 1 or len(vectors) != 1:
            raise ValueError(f"{Path(swap_model).name}: expected one image input (N,3,S,S) and one identity "
                             f"input (N,512), got {[(i.name, i.shape) for i in inputs]}")
        self._image_input, self._identity_input = images[0].name, vectors[0].name
        self.face_size = _side(images[0].shape, 128)
        rec_input = self.recognition_session.get_inputs()[0]
        self._rec_input, self._rec_size = rec_input.name, _side(rec_input.shape, 112)
        self.latent_map = _latent_map(Path(swap_model))
        self.identity: np.ndarray | None = None

    def embed(self, image_bgr: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """L2-normalised identity embedding of the face with landmarks `pts`."""
        size = self._rec_size
        matrix = similarity_fit(five_points(pts), ARCFACE_TEMPLATE * (size / 112.0))
        crop = cv2.warpAffine(image_bgr, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        (embedding,) = self.recognition_session.run(None, {self._rec_input: _blob(crop, 127.5, 127.5)})
        embedding = embedding.reshape(-1).astype(np.float32)
        return embedding / max(float(np.linalg.norm(embedding)), 1e-12)

    def set_source(self, source_bgr: np.ndarray, glasses: str = "source") -> None:
        super().set_source(source_bgr, glasses)  # the landmark engine's source too: a NoFaceError is the same
        pts = self._largest_face(source_bgr, "source photo")
        identity = self.embed(source_bgr, pts)
        if self.latent_map is not None:
            identity = identity @ self.latent_map
            identity /= max(float(np.linalg.norm(identity)), 1e-12)
        self.identity = identity.astype(np.float32)

    def _template(self) -> np.ndarray:
        # inswapper / HyperSwap: InsightFace's crop for 128-pixel models (the 112 template shifted 8 px right),
        # scaled to the model's size; SimSwap: ArcFace's first template.
        points, side = self.style["template"]
        return points * (self.face_size / side)

    def render_face(self, frame: np.ndarray, pts: np.ndarray, memory: dict | None = None,
                    blend: str = "feather", gaze: bool = False) -> bool:
        # (`gaze` is for the landmark engine: a swap model renders the target's own eyes and gaze.)
        box = face_box(pts, frame.shape)
        if box is None:
            return False
        x0, y0, w, h = box
        size = self.face_size
        matrix = similarity_fit(five_points(pts), self._template())
        crop = cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        result = self.swap_session.run(None, {self._image_input: _blob(crop, self.style["mean"], self.style["std"]),
                                              self._identity_input: self.identity[None]})[0]
        scale, offset = self.style["out"]
        face = cv2.cvtColor(np.clip(result[0].transpose(1, 2, 0) * scale + offset, 0, 255).astype(np.uint8),
                            cv2.COLOR_RGB2BGR)
        # Back into the face box: inverse of the alignment, shifted to the box origin.
        inverse = cv2.invertAffineTransform(matrix)
        inverse[:, 2] -= np.array([x0, y0], np.float32)
        warped = cv2.warpAffine(face, inverse, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        inside = cv2.warpAffine(np.full((size, size), 255, np.uint8), inverse, (w, h), flags=cv2.INTER_NEAREST)
        alpha, core = face_mask(pts, x0, y0, w, h, eye_keep_weights(pts, self.source.eyes))
        alpha *= cv2.erode(inside, np.ones((5, 5), np.uint8)).astype(np.float32) / 255.0
        region = frame[y0:y0 + h, x0:x0 + w]
        if self.colour_match:
            warped = colour_transfer(warped, region, cv2.bitwise_and(core, inside), memory=memory)
        (blend_multiband if blend == "multiband" else blend_into)(frame, warped, alpha, x0, y0)
        return True
