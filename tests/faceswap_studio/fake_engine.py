"""A stand-in for the swap engine with the same interface (used only while the real one is absent):
faces are "found" where the frame is not flat, a swap paints the source's mean colour into a box."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import imageio_ffmpeg
import numpy as np


class NoFaceError(ValueError):
    pass


@dataclass
class SwapOptions:
    target_face: int | None = None
    many_faces: bool = False
    reference_bgr: np.ndarray | None = None


def _has_face(bgr: np.ndarray) -> bool:
    return float(bgr.std()) > 10.0


class FaceSwapper:
    def __init__(self, models_dir: Any = None, threads: int = 1) -> None:
        self.source = None

    def set_source(self, source_bgr: np.ndarray) -> None:
        if not _has_face(source_bgr):
            raise NoFaceError("no face found in the source image")
        self.source = source_bgr.reshape(-1, 3).mean(0)

    def new_track(self, options: SwapOptions) -> dict:
        return {"options": options}

    def swap_frame(self, frame: np.ndarray, track: Any) -> tuple[np.ndarray, int]:
        if not _has_face(frame):
            return frame, 0
        out = frame.copy()
        h, w = out.shape[:2]
        out[h // 4 : h // 2, w // 3 : 2 * w // 3] = (
            out[h // 4 : h // 2, w // 3 : 2 * w // 3] * 0.5 + self.source * 0.5
        ).astype(np.uint8)
        return out, 1


def swap_image(swapper: FaceSwapper, target_bgr: np.ndarray, options: SwapOptions) -> tuple[np.ndarray, int]:
    return swapper.swap_frame(target_bgr, swapper.new_track(options))


@dataclass
class VideoInfo:
    width: int
    height: int
    fps: float
    frames: int
    duration_s: float
    has_audio: bool
    codec: str


def probe(path: Path) -> VideoInfo:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    n = sum(1 for _ in reader)
    w, h = meta["size"]
    return VideoInfo(w, h, meta["fps"], n, n / meta["fps"], bool(meta.get("audio_codec")), meta.get("codec", ""))


def read_frames(path: Path):  # noqa: ANN201
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    for raw in reader:
        yield np.frombuffer(raw, np.uint8).reshape(h, w, 3)[:, :, ::-1].copy()


class VideoWriter:
    def __init__(self, path: Path, w: int, h: int, fps: float, audio_from: Any = None, crf: int = 20) -> None:
        self.gen = imageio_ffmpeg.write_frames(
            str(path),
            (w, h),
            fps=fps,
            codec="libx264",
            quality=None,
            output_params=["-crf", str(crf)],
            macro_block_size=1,
        )
        self.gen.send(None)

    def __enter__(self) -> VideoWriter:
        return self

    def write(self, bgr: np.ndarray) -> None:
        self.gen.send(np.ascontiguousarray(bgr[:, :, ::-1]))

    def __exit__(self, *exc: Any) -> None:
        self.gen.close()


CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


def draw_label(frame: np.ndarray, corner: str = "bottom-right", text: str = "AI-generated") -> np.ndarray:
    out = frame.copy()
    h, w = out.shape[:2]
    bw, bh = 120, 24
    x = 4 if "left" in corner else w - bw - 4
    y = 4 if "top" in corner else h - bh - 4
    cv2.rectangle(out, (x, y), (x + bw, y + bh), (0, 0, 0), -1)
    cv2.putText(out, text, (x + 4, y + 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    return out


def embed_frame(frame: np.ndarray, index: int) -> np.ndarray:
    from genstudio.provenance.watermark import embed_watermark_bgr

    return embed_watermark_bgr(frame)


def detect_video(path: Path, max_frames: int = 120) -> dict:
    from genstudio.provenance.watermark import detect_watermark_bgr

    checked = detected = 0
    errors = []
    for i, frame in enumerate(read_frames(path)):
        if i >= max_frames:
            break
        found, e = detect_watermark_bgr(frame)
        checked += 1
        detected += int(found)
        errors.append(e or 0)
    return {
        "present": detected > checked // 2,
        "bit_errors": min(errors) if errors else None,
        "frames_checked": checked,
        "frames_detected": detected,
    }


def swap_video(
    swapper: FaceSwapper,
    target: Path,
    out: Path,
    options: SwapOptions,
    *,
    label_corner: str,
    watermark: bool = True,
    crf: int = 20,
    progress: Any = None,
) -> dict:
    from genstudio.faceswap.label import draw_label
    from genstudio.faceswap.media import VideoWriter, probe, read_frames
    from genstudio.faceswap.video_watermark import embed_frame

    info = probe(target)
    track = swapper.new_track(options)
    n = 0
    with VideoWriter(out, info.width, info.height, info.fps, crf=crf) as wr:
        for i, frame in enumerate(read_frames(target)):
            f, k = swapper.swap_frame(frame, track)
            f = draw_label(f, label_corner)
            if watermark:
                f = embed_frame(f, i)
            wr.write(f)
            n += k
            if progress:
                progress((i + 1) / info.frames)
    return {"frames": info.frames, "faces_swapped": n}


def install() -> list[str]:
    """Register a stand-in for each engine module that is not importable yet. Returns their names."""
    import importlib

    me = sys.modules[__name__]
    faked = []
    for name, attrs in {
        "engine": ["NoFaceError", "SwapOptions", "FaceSwapper", "swap_image"],
        "media": ["VideoInfo", "probe", "read_frames", "VideoWriter"],
        "label": ["CORNERS", "draw_label"],
        "video_watermark": ["embed_frame", "detect_video"],
        "pipeline": ["swap_video"],
    }.items():
        try:
            importlib.import_module(f"genstudio.faceswap.{name}")
            continue
        except ImportError:
            pass
        mod = types.ModuleType(f"genstudio.faceswap.{name}")
        for a in attrs:
            setattr(mod, a, getattr(me, a))
        sys.modules[mod.__name__] = mod
        faked.append(name)
    return faked
