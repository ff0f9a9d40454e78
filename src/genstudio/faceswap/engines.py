"""Which swap engine the studio runs: the built-in landmark engine, or a user's inswapper-style ONNX model
with a face-recognition ONNX model (GENSTUDIO_FACESWAP_ENGINE=onnx plus the two model paths)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genstudio.config import Settings


def engine_name(settings: Settings) -> str:
    return settings.faceswap_engine


def check_engine(settings: Settings) -> None:
    """ValueError naming the setting when the ONNX engine is chosen without usable model files."""
    if settings.faceswap_engine != "onnx":
        return
    for name, path in (
        ("GENSTUDIO_FACESWAP_SWAP_MODEL", settings.faceswap_swap_model),
        ("GENSTUDIO_FACESWAP_RECOGNITION_MODEL", settings.faceswap_recognition_model),
    ):
        if path is None:
            raise ValueError(f"{name} must name an .onnx file when GENSTUDIO_FACESWAP_ENGINE=onnx")
        if Path(path).suffix.lower() != ".onnx" or not Path(path).is_file():
            raise ValueError(f"{name}: {Path(path).name} is not an .onnx file")


def make_swapper(settings: Settings) -> Any:
    """A new swapper for one worker (swappers are not thread-safe)."""
    from genstudio.faceswap.face_models import load_face_models

    threads = settings.faceswap_threads or 1
    if settings.faceswap_engine == "onnx":
        from genstudio.faceswap.onnx_engine import OnnxFaceSwapper

        check_engine(settings)
        swapper: Any = OnnxFaceSwapper(
            Path(settings.faceswap_swap_model),  # type: ignore[arg-type]
            Path(settings.faceswap_recognition_model),  # type: ignore[arg-type]
            threads=threads,
            colour_match=settings.faceswap_onnx_colour_match,
            style=settings.faceswap_swap_style,
        )
    else:
        from genstudio.faceswap.engine import FaceSwapper

        swapper = FaceSwapper(threads=threads)
    swapper.face_models = load_face_models(settings, threads)
    return swapper
