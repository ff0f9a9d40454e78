"""The optional ONNX face models (enhancer, occluder, parser) with tiny models of the public models' input and
output shapes, built and exported here: each changes exactly the part of the face its model says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from faceswap_clips import requires_models

from genstudio.faceswap.engine import FaceSwapper, SwapOptions, face_box, swap_image
from genstudio.faceswap.face_models import (
    FFHQ_TEMPLATE,
    FaceEnhancer,
    FaceModels,
    FaceOccluder,
    FaceParser,
    check_face_models,
)

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytestmark = requires_models


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tiny_onnx_faces import export_tiny_post_models

    return export_tiny_post_models(tmp_path_factory.mktemp("post"))


@pytest.fixture(scope="module")
def engine(grace: np.ndarray) -> FaceSwapper:
    swapper = FaceSwapper()
    swapper.set_source(grace)
    return swapper


def _points(swapper: FaceSwapper, image: np.ndarray) -> np.ndarray:
    return swapper._largest_face(image, "target")


def _crop_point(pts: np.ndarray, u: float, v: float) -> tuple[int, int]:
    """The frame pixel at (u, v) of the 64x64 FFHQ-aligned crop (u, v in crop pixels)."""
    import cv2

    from genstudio.faceswap.face_models import _align

    x, y = cv2.invertAffineTransform(_align(pts, 64)) @ np.array([u, v, 1.0])
    return int(round(x)), int(round(y))


def test_enhancer_blends_its_face_by_the_amount(models: dict[str, Path], engine: FaceSwapper,
                                                astronaut: np.ndarray) -> None:
    pts = _points(engine, astronaut)
    x, y = _crop_point(pts, 32, 34)  # the middle of the face
    for name in ("enhancer", "codeformer"):
        enhancer = FaceEnhancer(models[name])
        assert enhancer.layout.size == 64 and not enhancer.layout.channels_last
        full, half = astronaut.copy(), astronaut.copy()
        assert enhancer.enhance(full, pts, 1.0) and enhancer.enhance(half, pts, 0.5)
        before = astronaut[y - 2:y + 3, x - 2:x + 3].astype(float)
        inverted = full[y - 2:y + 3, x - 2:x + 3].astype(float)
        assert np.abs(inverted - (255 - before)).mean() < 12, name   # the model's face (colours inverted)
        assert np.abs(half[y - 2:y + 3, x - 2:x + 3].astype(float) - 127.5).mean() < 12, name  # halfway
        far = face_box(pts, astronaut.shape, margin=0.15)
        assert far is not None
        x0, y0, w, h = far
        outside = np.ones(astronaut.shape[:2], bool)
        outside[y0:y0 + h, x0:x0 + w] = False
        assert np.array_equal(full[outside], astronaut[outside])  # nothing changes outside the face box
    assert not FaceEnhancer(models["enhancer"]).enhance(astronaut.copy(), pts, 0.0)


def _diff_in_crop(a: np.ndarray, b: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """|a - b| (grey levels, mean over colours) brought into the 64x64 FFHQ-aligned crop of the face."""
    import cv2

    from genstudio.faceswap.face_models import _align

    diff = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=2)
    return cv2.warpAffine(diff, _align(pts, 64), (64, 64), flags=cv2.INTER_AREA)


def test_occlusion_and_region_masks_keep_the_target(models: dict[str, Path], engine: FaceSwapper,
                                                    astronaut: np.ndarray) -> None:
    pts = _points(engine, astronaut)
    plain, _ = swap_image(engine, astronaut, SwapOptions())
    engine.face_models = FaceModels(occluder=FaceOccluder(models["occluder"]), parser=FaceParser(models["parser"]))
    try:
        masked, n = swap_image(engine, astronaut, SwapOptions(occlusion_mask=True))
        assert n == 1
        swapped = _diff_in_crop(plain, astronaut, pts)
        kept = _diff_in_crop(masked, astronaut, pts)
        # The "hand" (the crop's left third) keeps the target's pixels; right of it the swap is as before.
        assert swapped[24:48, 12:18].mean() > 3 and kept[24:48, 12:18].mean() < 0.5, (
            swapped[24:48, 12:18].mean(), kept[24:48, 12:18].mean())
        assert abs(kept[24:48, 28:50].mean() - swapped[24:48, 28:50].mean()) < 0.5
        regions, _ = swap_image(engine, astronaut, SwapOptions(region_mask=True))
        kept = _diff_in_crop(regions, astronaut, pts)
        # Below the crop's middle the parser says "hair": the target stays; above it, "skin": swapped.
        assert swapped[38:50, 20:44].mean() > 3 and kept[38:50, 20:44].mean() < 0.5
        assert abs(kept[16:27, 20:44].mean() - swapped[16:27, 20:44].mean()) < 0.5
        # Not asked for: no change from the plain swap.
        again, _ = swap_image(engine, astronaut, SwapOptions())
        assert np.array_equal(again, plain)
    finally:
        engine.face_models = None


def test_models_of_the_wrong_shape_and_unknown_regions_are_refused(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown \\['beard'\\]"):
        FaceParser(models["parser"], regions=["skin", "beard"])
    with pytest.raises(FileNotFoundError):
        FaceOccluder(tmp_path / "missing.onnx")
    assert FFHQ_TEMPLATE.shape == (5, 2)


def test_a_request_for_a_model_that_is_not_set_names_the_field_and_the_setting(models: dict[str, Path],
                                                                              settings) -> None:
    from genstudio.errors import LimitError

    with pytest.raises(LimitError) as err:
        check_face_models(settings, enhance=0.5, occlusion_mask=False, region_mask=False)
    assert err.value.field == "enhance" and "GENSTUDIO_FACESWAP_ENHANCER_MODEL" in str(err.value)
    configured = settings.model_copy(update={"faceswap_occluder_model": models["occluder"],
                                             "faceswap_parser_model": models["enhancer"].with_suffix(".txt")})
    check_face_models(configured, enhance=0.0, occlusion_mask=True, region_mask=False)
    with pytest.raises(LimitError, match="not an .onnx file"):
        check_face_models(configured, enhance=0.0, occlusion_mask=False, region_mask=True)
