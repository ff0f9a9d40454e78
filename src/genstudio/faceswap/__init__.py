"""Face swap: the landmark engine (and a pluggable ONNX one), video in/out, the visible label and the video
watermark. The studio around it (consent, audit, API, UI) builds on these modules."""

from genstudio.faceswap.engine import FaceSwapper, NoFaceError, SwapOptions, swap_image

__all__ = ["FaceSwapper", "NoFaceError", "SwapOptions", "swap_image"]
