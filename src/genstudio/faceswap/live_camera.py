"""Live face swap on this computer's camera, for desktop use: frames from a local camera (OpenCV), swapped,
labelled and watermarked exactly as the page's live mode does, sent to a **virtual camera** (pyvirtualcam:
v4l2loopback on Linux, OBS's virtual camera on Windows and macOS) so the labelled feed can be picked as the
camera in a video call. Consent is checked and recorded, and the session is audited (mode "live"), as for
every swap.

pyvirtualcam is optional (`pip install pyvirtualcam`); where it or a virtual camera device is missing the run
stops before opening the camera, with a message saying what to install.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

INSTALL_HINT = ("a virtual camera needs the pyvirtualcam package (pip install pyvirtualcam) and a virtual camera "
                "device: v4l2loopback on Linux (sudo modprobe v4l2loopback exclusive_caps=1), OBS Studio's "
                "virtual camera on Windows and macOS")


class VirtualCameraUnavailable(RuntimeError):
    """No pyvirtualcam, or no virtual camera device to send frames to."""


def open_virtual_camera(width: int, height: int, fps: float) -> Any:
    """A pyvirtualcam.Camera taking RGB frames; VirtualCameraUnavailable (with what to install) otherwise."""
    try:
        import pyvirtualcam
    except ImportError as exc:
        raise VirtualCameraUnavailable(f"virtual camera: {INSTALL_HINT}") from exc
    try:
        return pyvirtualcam.Camera(width=width, height=height, fps=fps, fmt=pyvirtualcam.PixelFormat.RGB)
    except Exception as exc:  # noqa: BLE001 - pyvirtualcam raises RuntimeError (and others) with its reason
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise VirtualCameraUnavailable(f"virtual camera: no device to send to ({reason}); {INSTALL_HINT}") from exc


def start_live(settings: Any, source_bgr: np.ndarray, options: Any, fps: float | None = None) -> tuple[Any, Any, Any]:
    """(swapper, track, marker) for one live session (the page's or a local camera's): its own engine with the
    source set, a track without the small-face search (a slow frame would stutter), one mark id."""
    from genstudio.faceswap.engines import make_swapper
    from genstudio.provenance.videomark import FrameMarker

    swapper = make_swapper(settings)
    swapper.set_source(source_bgr, glasses=options.glasses)
    track = swapper.new_track(replace(options, small_faces=False))
    if fps is not None:
        track.fps = fps
    return swapper, track, FrameMarker(os.urandom(6))


def live_frame(swapper: Any, track: Any, marker: Any, frame_bgr: np.ndarray, corner: str) -> tuple[np.ndarray, int]:
    """One live frame swapped, labelled and watermarked: (the frame, faces swapped)."""
    from genstudio.faceswap.label import stamp_label

    out, faces = swapper.swap_frame(frame_bgr, track)
    out = np.ascontiguousarray(out)
    stamp_label(out, corner=corner)
    return marker.embed(out), int(faces)


@dataclass
class LiveStats:
    frames: int = 0
    frames_with_faces: int = 0
    seconds: float = 0.0
    camera: str = ""
    virtual_camera: str | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def run_camera(studio: Any, request: Any, *, camera: int = 0, virtual: bool = True, max_frames: int | None = None,
               fps: float = 30.0, on_frame: Callable[[np.ndarray, int], None] | None = None) -> LiveStats:
    """Swap the faces of camera `camera` live until `max_frames` (or Ctrl-C), each frame labelled and
    watermarked, sent to a virtual camera when `virtual`. `request` is a FaceSwapRequest whose `source` is the
    face photo (a path on the command line); consent is checked, recorded and the session audited.
    `on_frame(frame_bgr, faces)` sees each output frame (a preview)."""
    import cv2

    from genstudio.faceswap.safeguards import open_audit, record_consent, update_audit
    from genstudio.faceswap.studio import load_bgr, make_options

    consent, source = studio.resolve_live(request)  # refusals are audited there
    capture = cv2.VideoCapture(camera)
    if not capture.isOpened():
        capture.release()
        raise ValueError(f"--camera: camera {camera} could not be opened")
    ok, first = capture.read()
    if not ok or first is None:
        capture.release()
        raise ValueError(f"--camera: camera {camera} gave no frame")
    height, width = first.shape[:2]
    sink = None
    try:
        if virtual:
            sink = open_virtual_camera(width, height, fps)
    except VirtualCameraUnavailable:
        capture.release()
        raise
    store, actor = studio.store, studio.ctx.actor
    consent_row = record_consent(store, consent, recorded_by=actor, source_sha256=source.sha256)
    audit = open_audit(store, actor=actor, mode="live", consent_id=consent_row.id, source_asset_id=source.asset_id,
                       source_sha256=source.sha256, target_sha256="", outcome="running")
    stats = LiveStats(camera=str(camera), virtual_camera=getattr(sink, "device", None) if sink else None)
    outcome, error = "succeeded", None
    started = time.monotonic()
    try:
        options = make_options(request.target_face, request.many_faces, None, enhance=request.enhance,
                               occlusion_mask=request.occlusion_mask, region_mask=request.region_mask,
                               hand_mask=request.hand_mask, glasses=request.glasses, blend=request.blend,
                               follow_gaze=request.follow_gaze)
        swapper, track, marker = start_live(studio.model_settings, load_bgr(source.read(), "source"), options, fps)
        frame = first
        while frame is not None:
            out, faces = live_frame(swapper, track, marker, frame, request.label_corner)
            if sink is not None:
                sink.send(cv2.cvtColor(out, cv2.COLOR_BGR2RGB))
                sink.sleep_until_next_frame()
            if on_frame is not None:
                on_frame(out, faces)
            stats.frames += 1
            stats.frames_with_faces += faces > 0
            if max_frames is not None and stats.frames >= max_frames:
                break
            ok, frame = capture.read()
            if not ok:
                break
    except KeyboardInterrupt:
        pass  # Ctrl-C: a normal end
    except BaseException as exc:
        outcome, error = "failed", str(exc) or type(exc).__name__
        raise
    finally:
        stats.seconds = time.monotonic() - started
        capture.release()
        if sink is not None:
            sink.close()
        update_audit(store, audit.id, outcome=outcome, error=error,
                     stats={"frames": stats.frames, "frames_with_faces": stats.frames_with_faces,
                            "fps": round(stats.fps, 2), "camera": stats.camera,
                            "virtual_camera": stats.virtual_camera})
    return stats
