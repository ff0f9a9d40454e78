"""Video face swap end to end: decode, swap, visible label, invisible watermark, H.264 encode with the audio."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from genstudio.faceswap.engine import FaceSwapper, SwapOptions
from genstudio.faceswap.label import CORNERS, draw_label, stamp_label
from genstudio.faceswap.media import VideoWriter, probe, read_frames
from genstudio.provenance.videomark import FrameMarker

PROGRESS_EVERY = 5  # frames between progress callbacks
QUEUE_FRAMES = 4  # frames held between the pipeline's stages (decode -> swap -> label, mark, encode)
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


class _Stage(threading.Thread):
    """One stage of the pipeline in its own thread, between two bounded queues: decoding ahead of the swap,
    or labelling, watermarking and encoding behind it, so that on two cores the swap of one frame overlaps the
    decode of the next and the mark and encode of the last (OpenCV, numpy and the pipes release the GIL). An
    exception is kept and re-raised by the main thread; `stop` ends the stage at the next frame."""

    def __init__(self, name: str, work: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self.work, self.error = work, None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc
            self.stop.set()  # the main thread's puts to this stage give up


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _swap_video(swapper: FaceSwapper, target: Path, out: Path, options: SwapOptions, *, label_corner: str,
                label: bool, watermark: bool, crf: int, progress: Callable[[float], None] | None,
                mark_id: bytes | None = None, overlap: bool = True) -> dict:
    # `label=False` and `overlap=False` (every stage in turn on this thread, as before the stages had threads)
    # exist for the benchmarks' baselines only.
    if label_corner not in CORNERS:
        raise ValueError(f"label_corner must be one of {', '.join(CORNERS)}, got {label_corner!r}")
    target, out = Path(target), Path(out)
    marker = FrameMarker(mark_id or os.urandom(6)) if watermark else None
    info = probe(target)
    track = swapper.new_track(options)
    track.fps = info.fps
    stages = {"decode": 0.0, "swap": 0.0, "label": 0.0, "watermark": 0.0, "encode": 0.0}
    counts = {"frames": 0, "swapped": 0}
    started = time.perf_counter()

    def swap_one(frame: np.ndarray) -> tuple[np.ndarray, int]:
        t0 = time.perf_counter()
        frame, count = swapper.swap_frame(frame, track)
        stages["swap"] += time.perf_counter() - t0
        counts["frames"] += 1
        counts["swapped"] += count > 0
        if progress is not None and counts["frames"] % PROGRESS_EVERY == 0:
            progress(min(counts["frames"] / max(info.frames, 1), 0.999))
        return frame, count

    with VideoWriter(out, info.width, info.height, info.fps, audio_from=target if info.has_audio else None,
                     crf=crf, x264_params=X264_PARAMS if marker is not None else None) as video:

        def finish_one(frame: np.ndarray, count: int) -> None:  # label, mark, encode
            t0 = time.perf_counter()
            if label:
                if count:  # the swap returned a fresh array: label it in place
                    stamp_label(frame, label_corner)
                else:
                    frame = draw_label(frame, label_corner)
            t1 = time.perf_counter()
            if marker is not None:
                frame = marker.embed(frame)
            t2 = time.perf_counter()
            video.write(frame)
            stages["label"] += t1 - t0
            stages["watermark"] += t2 - t1
            stages["encode"] += time.perf_counter() - t2

        if overlap:
            _run_overlapped(read_frames(target), swap_one, finish_one, stages)
        else:
            frames_iter = read_frames(target)
            try:
                while True:
                    t0 = time.perf_counter()
                    frame = next(frames_iter, None)
                    stages["decode"] += time.perf_counter() - t0
                    if frame is None:
                        break
                    finish_one(*swap_one(frame))
            finally:
                frames_iter.close()
        t0 = time.perf_counter()
    stages["encode"] += time.perf_counter() - t0  # flushing the encoder on close
    total = time.perf_counter() - started
    if progress is not None:
        progress(1.0)
    frames = counts["frames"]
    return {"frames": frames, "faces_swapped_frames": counts["swapped"], "faces_seen": track.next_order,
            "fps": frames / total if total else 0.0,
            "seconds": {**{k: round(v, 4) for k, v in stages.items()}, "total": round(total, 4)},
            "width": info.width, "height": info.height, "input_fps": info.fps, "audio": info.has_audio,
            "watermark": watermark, "mark_id": marker.ident.hex() if marker else None,
            "mark_psnr_db": marker.psnr_db if marker else None, "label_corner": label_corner}


def _run_overlapped(frames_iter: Iterator[np.ndarray], swap_one: Callable[[np.ndarray], tuple[np.ndarray, int]],
                    finish_one: Callable[[np.ndarray, int], None], stages: dict[str, float]) -> None:
    """Decode in one thread, swap on this one, label/mark/encode in another, frames in order through two
    bounded queues; the first error (or a cancel raised by the swap's progress) stops all three and is raised
    here once every thread has ended. `stages["decode"]` counts the time the swap waited for a frame."""
    decoded: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
    swapped: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
    end = object()

    def decode() -> None:
        try:
            for frame in frames_iter:
                if not _put(decoded, frame, reader.stop):
                    return
        finally:
            frames_iter.close()
            _put(decoded, end, reader.stop)  # even after an error: the swap loop then stops and raises it

    def finish() -> None:
        while True:
            item = swapped.get()
            if item is end or writer.stop.is_set():
                return
            finish_one(*item)

    reader, writer = _Stage("faceswap-decode", decode), _Stage("faceswap-encode", finish)
    reader.start()
    writer.start()
    try:
        while True:
            t0 = time.perf_counter()
            frame = decoded.get()
            stages["decode"] += time.perf_counter() - t0
            if frame is end:
                break
            if writer.error is not None or not _put(swapped, swap_one(frame), writer.stop):
                break
        if reader.error is None:
            _put(swapped, end, writer.stop)
            writer.join()
    finally:
        reader.stop.set()
        if writer.is_alive():  # leaving on an error or a cancel: the encode stage stops at once
            writer.stop.set()
            _put(swapped, end, threading.Event())
            writer.join()
        reader.join()
    for stage in (reader, writer):
        if stage.error is not None:
            raise stage.error
