"""Video face swap end to end: decode, swap, visible label, invisible watermark, H.264 encode with the audio."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from genstudio.faceswap.engine import FaceSwapper, SwapOptions
from genstudio.faceswap.label import CORNERS, draw_label, stamp_label
from genstudio.faceswap.media import VideoWriter, probe, read_frames
from genstudio.provenance.videomark import FrameMarker

PROGRESS_EVERY = 5  # frames between progress callbacks
# x264's B-frames are coded coarser than P-frames by default (pbratio 1.3), which is where the invisible mark
# is weakest: code them like P-frames. Measured in bench/run_video_mark_bench.py.
X264_PARAMS = "bframes=0"


def swap_video(swapper: FaceSwapper, target: Path, out: Path, options: SwapOptions, *,
               label_corner: str = "bottom-right", watermark: bool = True, crf: int = 20,
               mark_id: bytes | None = None, progress: Callable[[float], None] | None = None) -> dict:
    """Swap the swapper's source face into every frame of `target` and write an H.264 MP4 to `out` (same fps and
    frame count, audio kept). Every frame gets the "AI-generated" label. Returns stats: frames,
    faces_swapped_frames, faces_seen (faces numbered in the video: target_face indexes them), fps and seconds
    per stage. Every frame carries the invisible watermark (`provenance.videomark`) with `mark_id` (6 bytes;
    random when not given; the stats' `mark_id`). `progress(fraction)` runs every few frames; an exception it
    raises stops the job, removes the partial output and propagates."""
    return _swap_video(swapper, target, out, options, label_corner=label_corner, label=True, watermark=watermark,
                       crf=crf, mark_id=mark_id, progress=progress)


def _swap_video(swapper: FaceSwapper, target: Path, out: Path, options: SwapOptions, *, label_corner: str,
                label: bool, watermark: bool, crf: int, progress: Callable[[float], None] | None,
                mark_id: bytes | None = None) -> dict:
    # `label=False` exists for the benchmark's baseline only; the public entry point always labels.
    if label_corner not in CORNERS:
        raise ValueError(f"label_corner must be one of {', '.join(CORNERS)}, got {label_corner!r}")
    target, out = Path(target), Path(out)
    marker = FrameMarker(mark_id or os.urandom(6)) if watermark else None
    info = probe(target)
    track = swapper.new_track(options)
    track.fps = info.fps
    stages = {"decode": 0.0, "swap": 0.0, "label": 0.0, "watermark": 0.0, "encode": 0.0}
    frames = swapped_frames = 0
    started = time.perf_counter()
    frames_iter = read_frames(target)
    try:
        with VideoWriter(out, info.width, info.height, info.fps, audio_from=target if info.has_audio else None,
                         crf=crf, x264_params=X264_PARAMS if marker is not None else None) as writer:
            while True:
                t0 = time.perf_counter()
                frame = next(frames_iter, None)
                t1 = time.perf_counter()
                stages["decode"] += t1 - t0
                if frame is None:
                    break
                frame, count = swapper.swap_frame(frame, track)
                t2 = time.perf_counter()
                if label:
                    if count:  # the swap returned a fresh array: label it in place
                        stamp_label(frame, label_corner)
                    else:
                        frame = draw_label(frame, label_corner)
                t3 = time.perf_counter()
                if marker is not None:
                    frame = marker.embed(frame)
                t4 = time.perf_counter()
                writer.write(frame)
                t5 = time.perf_counter()
                stages["swap"] += t2 - t1
                stages["label"] += t3 - t2
                stages["watermark"] += t4 - t3
                stages["encode"] += t5 - t4
                frames += 1
                swapped_frames += count > 0
                if progress is not None and frames % PROGRESS_EVERY == 0:
                    progress(min(frames / max(info.frames, 1), 0.999))
            t0 = time.perf_counter()
        stages["encode"] += time.perf_counter() - t0  # flushing the encoder on close
    finally:
        frames_iter.close()
    total = time.perf_counter() - started
    if progress is not None:
        progress(1.0)
    return {"frames": frames, "faces_swapped_frames": swapped_frames, "faces_seen": track.next_order,
            "fps": frames / total if total else 0.0,
            "seconds": {**{k: round(v, 4) for k, v in stages.items()}, "total": round(total, 4)},
            "width": info.width, "height": info.height, "input_fps": info.fps, "audio": info.has_audio,
            "watermark": watermark, "mark_id": marker.ident.hex() if marker else None,
            "mark_psnr_db": marker.psnr_db if marker else None, "label_corner": label_corner}
