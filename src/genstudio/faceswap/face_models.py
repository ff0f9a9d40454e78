"""ONNX face models that work on any engine's result, the kinds FaceFusion users already have:

- a **face enhancer** (GFPGAN, GPEN or CodeFormer exports): the swapped face, aligned to the FFHQ template at
  the model's size, restored by the model and blended back with an amount (0 = off, 1 = the model's face);
- an **occluder** (XSeg-style): a mask of the visible face on the *target* (hands, a microphone, hair in front
  of the face are 0), so the target's own pixels stay there;
- a **face parser** (BiSeNet-style, CelebAMask-HQ's 19 classes): the target's face regions; only the chosen
  regions (skin, brows, eyes, nose, lips by default) take the swap, so hair, glasses, hats and the neck stay
  the target's.

Each model's input and output layout is read from the model (NCHW or NHWC; one channel or several), so
exports of other shapes work. No model ships with genstudio: the user points the studio at files they have the
right to use (several public ones are for non-commercial use only: see docs/faceswap.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from genstudio.faceswap.engine import face_box, five_points, similarity_fit

# FFHQ's five points (eyes, nose tip, mouth corners) at 512x512: the alignment GFPGAN, GPEN, CodeFormer,
# XSeg and BiSeNet face models are trained on.
FFHQ_TEMPLATE = np.array([[192.98138, 239.94708], [318.90277, 240.19360], [256.63416, 314.01935],
                          [201.26117, 371.41043], [313.08905, 371.15118]], np.float32)

# CelebAMask-HQ classes as BiSeNet face parsers number them.
PARSER_CLASSES = ("background", "skin", "left_brow", "right_brow", "left_eye", "right_eye", "glasses",
                  "left_ear", "right_ear", "earring", "nose", "mouth", "upper_lip", "lower_lip", "neck",
                  "necklace", "cloth", "hair", "hat")
DEFAULT_REGIONS = ("skin", "left_brow", "right_brow", "left_eye", "right_eye", "nose", "mouth", "upper_lip",
                   "lower_lip")
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def _session(path: Path, threads: int):
    from genstudio.faceswap.onnx_engine import _session as session

    return session(path, threads)


@dataclass
class _Layout:
    name: str
    size: int
    channels_last: bool


def _image_input(session, what: str) -> _Layout:
    images = [i for i in session.get_inputs() if len(i.shape) == 4]
    if len(images) != 1:
        raise ValueError(f"{what}: expected one image input (N,3,S,S or N,S,S,3), got "
                         f"{[(i.name, i.shape) for i in session.get_inputs()]}")
    shape = images[0].shape
    channels_last = shape[-1] == 3 and shape[1] != 3
    side = shape[1] if channels_last else shape[-1]
    return _Layout(images[0].name, side if isinstance(side, int) and side > 0 else 256, channels_last)


def _to_blob(rgb: np.ndarray, layout: _Layout) -> np.ndarray:
    return rgb[None] if layout.channels_last else rgb.transpose(2, 0, 1)[None]


def _from_output(out: np.ndarray, channels_last: bool | None = None) -> np.ndarray:
    """A model's first output as HxWxC (batch dropped), whatever its layout."""
    arr = np.asarray(out)[0]
    if arr.ndim == 2:
        return arr[:, :, None]
    if channels_last is None:  # channels are the short axis
        channels_last = arr.shape[-1] < arr.shape[0]
    return arr if channels_last else arr.transpose(1, 2, 0)


def _align(pts: np.ndarray, size: int) -> np.ndarray:
    return similarity_fit(five_points(pts), FFHQ_TEMPLATE * (size / 512.0))


def _aligned_rgb(frame: np.ndarray, pts: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(the FFHQ alignment matrix, the face's SxS crop as float32 RGB in 0-255)."""
    matrix = _align(pts, size)
    crop = cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return matrix, cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32)


def _to_box(matrix: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The inverse of the alignment `matrix`, into the coordinates of the face box (x0, y0, w, h)."""
    inverse = cv2.invertAffineTransform(matrix)
    inverse[:, 2] -= np.array(box[:2], np.float32)
    return inverse


def _paste_mask(matrix: np.ndarray, box: tuple[int, int, int, int], values: np.ndarray) -> np.ndarray:
    """`values` (SxS float, in the aligned crop) brought back to the face box; 1 outside the crop."""
    back = cv2.warpAffine(values.astype(np.float32), _to_box(matrix, box), box[2:], flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=1.0)
    return np.clip(back, 0.0, 1.0)


class FaceEnhancer:
    """GFPGAN / GPEN / CodeFormer-style restoration: RGB in [-1, 1] at SxS, aligned to FFHQ; out the same.
    CodeFormer's second input (the fidelity weight, a scalar) is fed `fidelity`."""

    def __init__(self, path: Path, threads: int = 1, fidelity: float = 0.5) -> None:
        self.session = _session(path, threads)
        self.layout = _image_input(self.session, Path(path).name)
        self.extra = {i.name: np.array([fidelity], np.float64 if "double" in i.type else np.float32)
                      for i in self.session.get_inputs() if i.name != self.layout.name}

    def enhance(self, frame: np.ndarray, pts: np.ndarray, amount: float) -> bool:
        """Restore the face with landmarks `pts` in `frame`, in place, blended by `amount` (0..1)."""
        box = face_box(pts, frame.shape, margin=0.15)
        if box is None or amount <= 0:
            return False
        size = self.layout.size
        matrix, rgb = _aligned_rgb(frame, pts, size)
        rgb = rgb / 127.5 - 1.0
        (out,) = self.session.run(None, {self.layout.name: _to_blob(rgb, self.layout), **self.extra})[:1]
        restored = _from_output(out, self.layout.channels_last)
        restored = cv2.cvtColor(np.clip((restored + 1.0) * 127.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
        x0, y0, w, h = box
        inverse = _to_box(matrix, box)
        back = cv2.warpAffine(restored, inverse, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # A feathered square: the crop's edges never show.
        edge = max(2, size // 16)
        square = np.zeros((size, size), np.float32)
        square[edge:-edge, edge:-edge] = 1.0
        square = cv2.GaussianBlur(square, (0, 0), edge / 2)
        weight = cv2.warpAffine(square, inverse, (w, h), flags=cv2.INTER_LINEAR) * float(min(amount, 1.0))
        region = frame[y0:y0 + h, x0:x0 + w].astype(np.float32)
        frame[y0:y0 + h, x0:x0 + w] = np.clip(region + weight[:, :, None] * (back - region), 0, 255).astype(np.uint8)
        return True


class FaceOccluder:
    """XSeg-style occlusion mask: RGB in [0, 1] at SxS (NHWC or NCHW), aligned to FFHQ; out one channel in
    [0, 1], 1 where the face is visible."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        self.session = _session(path, threads)
        self.layout = _image_input(self.session, Path(path).name)

    def visible(self, frame: np.ndarray, pts: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """Over the face box: 1 where the face shows, 0 where something is in front of it."""
        size = self.layout.size
        matrix, rgb = _aligned_rgb(frame, pts, size)
        (out,) = self.session.run(None, {self.layout.name: _to_blob(rgb / 255.0, self.layout)})[:1]
        mask = np.clip(_from_output(out)[:, :, 0], 0.0, 1.0)
        mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, size / 128))  # soft edges, as FaceFusion blurs it
        return _paste_mask(matrix, box, mask)


class FaceParser:
    """BiSeNet-style parser: RGB normalised by ImageNet's mean and std at SxS, aligned to FFHQ; out C class
    scores per pixel (CelebAMask-HQ's 19 classes)."""

    def __init__(self, path: Path, threads: int = 1, regions: Sequence[str] = DEFAULT_REGIONS) -> None:
        unknown = sorted(set(regions) - set(PARSER_CLASSES))
        if unknown:
            raise ValueError(f"face parser regions: unknown {unknown}; known: {', '.join(PARSER_CLASSES)}")
        self.session = _session(path, threads)
        self.layout = _image_input(self.session, Path(path).name)
        self.keep = np.array([PARSER_CLASSES.index(r) for r in regions])

    def regions(self, frame: np.ndarray, pts: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """Over the face box: 1 in the chosen regions of the target's face, 0 elsewhere (hair, glasses, ...)."""
        size = self.layout.size
        matrix, rgb = _aligned_rgb(frame, pts, size)
        rgb = (rgb / 255.0 - _IMAGENET_MEAN) / _IMAGENET_STD
        (out,) = self.session.run(None, {self.layout.name: _to_blob(rgb, self.layout)})[:1]
        labels = _from_output(out).argmax(axis=2)
        mask = np.isin(labels, self.keep).astype(np.float32)
        mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, size / 128))
        # Outside the parser's crop the engine's own mask decides: 1 there.
        return _paste_mask(matrix, box, mask)


@dataclass
class FaceModels:
    """The optional models a swap runs after the engine's face, as a request asks (SwapOptions' `enhance`,
    `occlusion_mask`, `region_mask`): masks first (on the target), then the enhancer (on the result)."""

    enhancer: FaceEnhancer | None = None
    occluder: FaceOccluder | None = None
    parser: FaceParser | None = None

    def apply(self, target: np.ndarray, out: np.ndarray, pts: np.ndarray, options: Any) -> None:
        """`out` holds the swap of the face with landmarks `pts` over `target` (the frame before it): keep the
        target where the masks say so, then enhance. In place on `out`."""
        occluder = self.occluder if options.occlusion_mask else None
        parser = self.parser if options.region_mask else None
        box = face_box(pts, out.shape, margin=0.15)
        if box is None:
            return
        x0, y0, w, h = box
        keep = np.ones((h, w), np.float32)
        if occluder is not None:
            keep *= occluder.visible(target, pts, box)
        if parser is not None:
            keep *= parser.regions(target, pts, box)
        if occluder is not None or parser is not None:
            part = (slice(y0, y0 + h), slice(x0, x0 + w))
            before = target[part].astype(np.float32)
            out[part] = np.clip(before + keep[:, :, None] * (out[part].astype(np.float32) - before), 0, 255
                                ).astype(np.uint8)
        if self.enhancer is not None and options.enhance > 0:
            self.enhancer.enhance(out, pts, options.enhance)


def parser_regions(settings: Any) -> list[str]:
    return [r.strip() for r in settings.faceswap_parser_regions.split(",") if r.strip()]


def load_face_models(settings: Any, threads: int = 1) -> FaceModels | None:
    """The face models the settings name (None when they name none)."""
    regions = parser_regions(settings)
    models = FaceModels(
        enhancer=FaceEnhancer(settings.faceswap_enhancer_model, threads) if settings.faceswap_enhancer_model else None,
        occluder=FaceOccluder(settings.faceswap_occluder_model, threads) if settings.faceswap_occluder_model else None,
        parser=FaceParser(settings.faceswap_parser_model, threads, regions) if settings.faceswap_parser_model else None,
    )
    return models if (models.enhancer or models.occluder or models.parser) else None


# The request fields that need a model, and the setting that names it.
NEEDS = {"enhance": "faceswap_enhancer_model", "occlusion_mask": "faceswap_occluder_model",
         "region_mask": "faceswap_parser_model"}


def check_face_models(settings: Any, *, enhance: float, occlusion_mask: bool, region_mask: bool,
                      hand_mask: bool = False, follow_gaze: bool = False) -> None:
    """ValueError(field, message)-style check: a request asking for a model the settings do not name."""
    from genstudio.errors import LimitError

    if follow_gaze and not iris_model_present():
        raise LimitError("follow_gaze", "the built-in iris model is missing on this server: run "
                                        "`python scripts/fetch_face_models.py` (or `make install`)")
    if hand_mask and not hand_models_present():
        raise LimitError("hand_mask", "the built-in hand models are missing on this server: run "
                                      "`python scripts/fetch_face_models.py` (or `make install`)")

    asked = {"enhance": enhance > 0, "occlusion_mask": occlusion_mask, "region_mask": region_mask}
    for field, wanted in asked.items():
        setting = NEEDS[field]
        path = getattr(settings, setting)
        if wanted and path is None:
            raise LimitError(field, f"needs a model: set GENSTUDIO_{setting.upper()} to an .onnx file")
        if wanted and (Path(path).suffix.lower() != ".onnx" or not Path(path).is_file()):
            raise LimitError(field, f"GENSTUDIO_{setting.upper()}: {Path(path).name} is not an .onnx file")


def hand_models_present() -> bool:
    from genstudio.faceswap.hands import HAND_FILE, PALM_FILE
    from genstudio.faceswap.landmarks import models_present

    return models_present(PALM_FILE, HAND_FILE)


def iris_model_present() -> bool:
    from genstudio.faceswap.iris import IRIS_FILE
    from genstudio.faceswap.landmarks import models_present

    return models_present(IRIS_FILE)


def face_models_info(settings: Any) -> dict[str, Any]:
    """Which optional face models this studio has, for the page and `GET /api/faceswap/options`."""
    return {"hand_mask": hand_models_present(), "follow_gaze": iris_model_present(),
            "enhance": settings.faceswap_enhancer_model is not None,
            "occlusion_mask": settings.faceswap_occluder_model is not None,
            "region_mask": settings.faceswap_parser_model is not None,
            "parser_regions": parser_regions(settings),
            "engine": settings.faceswap_engine}
