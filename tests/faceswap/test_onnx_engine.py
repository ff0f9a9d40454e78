"""The ONNX engine path with tiny models of the inswapper / ArcFace shapes, built and exported here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from faceswap_clips import background, place, requires_models, write_clip

from genstudio.faceswap.engine import SwapOptions, swap_image
from genstudio.faceswap.media import probe
from genstudio.faceswap.onnx_engine import OnnxFaceSwapper
from genstudio.faceswap.pipeline import swap_video

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytestmark = requires_models


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tiny_onnx_faces import export_tiny_face_models

    return export_tiny_face_models(tmp_path_factory.mktemp("onnx"))


def _face_diff(out: np.ndarray, frame: np.ndarray, swapper: OnnxFaceSwapper) -> tuple[float, float]:
    (det,) = swapper.landmarker.detect(frame)
    x0, y0, x1, y1 = det.box.astype(int)
    diff = np.abs(out.astype(int) - frame.astype(int)).mean(axis=2)
    inner = diff[y0 + 15:y1 - 15, x0 + 15:x1 - 15].mean()
    diff[max(0, y0 - 60):y1 + 60, max(0, x0 - 60):x1 + 60] = 0
    return float(inner), float(diff.max())


def test_onnx_engine_swaps_with_tiny_models(models: dict[str, Path], astronaut: np.ndarray,
                                            grace: np.ndarray) -> None:
    swapper = OnnxFaceSwapper(models["swap"], models["recognition"])
    swapper.set_source(grace)
    assert swapper.identity.shape == (512,) and np.isclose(np.linalg.norm(swapper.identity), 1.0)
    assert swapper.latent_map is None
    other = swapper.embed(astronaut, swapper._largest_face(astronaut, "x"))
    assert float(other @ swapper.identity) < 0.9999  # the identity depends on the face
    out, count = swap_image(swapper, astronaut, SwapOptions())
    assert count == 1
    inner, outside = _face_diff(out, astronaut, swapper)
    assert inner > 5 and outside == 0


def test_identity_model_pastes_back_in_place(models: dict[str, Path], astronaut: np.ndarray,
                                             grace: np.ndarray) -> None:
    # A swap model that returns its input: align -> model -> inverse warp -> blend must give the frame back.
    swapper = OnnxFaceSwapper(models["identity"], models["recognition"])
    swapper.set_source(grace)
    out, count = swap_image(swapper, astronaut, SwapOptions())
    assert count == 1
    inner, outside = _face_diff(out, astronaut, swapper)
    assert inner < 4 and outside == 0


def test_onnx_engine_runs_the_video_pipeline(models: dict[str, Path], astronaut: np.ndarray, grace: np.ndarray,
                                             tmp_path: Path) -> None:
    frames = [place(background(), astronaut, 300 + 5 * i, 240, 520) for i in range(12)]
    clip = write_clip(tmp_path / "in.mp4", frames, 24.0)
    swapper = OnnxFaceSwapper(models["swap"], models["recognition"])
    swapper.set_source(grace)
    stats = swap_video(swapper, clip, tmp_path / "out.mp4", SwapOptions())
    assert stats["frames"] == 12 and stats["faces_swapped_frames"] == 12
    assert probe(tmp_path / "out.mp4").frames == 12


def test_onnx_engine_rejects_wrong_model_shapes(models: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="one image input"):
        OnnxFaceSwapper(models["recognition"], models["recognition"])
    with pytest.raises(FileNotFoundError, match="ONNX model not found"):
        OnnxFaceSwapper(Path("/nonexistent/inswapper.onnx"), models["recognition"])


def test_hyperswap_and_simswap_styles(models: dict[str, Path], astronaut: np.ndarray, grace: np.ndarray,
                                      tmp_path: Path) -> None:
    """Other swap-model families: their crop template, input scaling and output scaling. A model returning its
    input pastes the face back in place in each style; a model returning zeros gives HyperSwap's mid grey
    ([-1, 1] outputs) where an inswapper-style model would give black."""
    from tiny_onnx_faces import export_styled_swaps

    styled = export_styled_swaps(tmp_path)
    for name, style in (("hyperswap", "hyperswap"), ("simswap", "simswap")):
        swapper = OnnxFaceSwapper(styled[name], models["recognition"], style=style)
        assert swapper.face_size == (256 if style == "hyperswap" else 224)
        swapper.set_source(grace)
        out, count = swap_image(swapper, astronaut, SwapOptions())
        assert count == 1
        inner, outside = _face_diff(out, astronaut, swapper)
        assert inner < 4 and outside == 0, (style, inner)
    grey = OnnxFaceSwapper(styled["hyperswap_zero"], models["recognition"], style="hyperswap")
    grey.set_source(grace)
    out, _ = swap_image(grey, astronaut, SwapOptions())
    (det,) = grey.landmarker.detect(astronaut)
    x0, y0, x1, y1 = det.box.astype(int)
    centre = out[(y0 + y1) // 2 - 8:(y0 + y1) // 2 + 8, (x0 + x1) // 2 - 8:(x0 + x1) // 2 + 8].astype(float)
    assert abs(centre.mean() - 127.5) < 12
    with pytest.raises(ValueError, match="style must be one of"):
        OnnxFaceSwapper(styled["simswap"], models["recognition"], style="ghost")
