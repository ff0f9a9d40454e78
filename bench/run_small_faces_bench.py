"""Small faces: recall and cost of the face detector with and without the small-face search (a pyramid of
tiles down to 6x the smallest face), side by side in one run; and what the search costs a video swap.

Frames: the public-domain astronaut pasted so that her face is N px wide (2-3 copies a frame) on a plain
background, at 640x480, 1280x720 and 1920x1080. Recall: faces found (detector + mesh presence) of faces
placed. Cost: the median time of one detection call. Video: a 720p clip (60 frames, two people: a 150 px and
a 40 px face) swapped with `many_faces`, small-face search on (the first frame and every 30th) and off,
interleaved; median fps and the faces the swap saw (numbered). Results: bench/results/small_faces.json.

    .venv/bin/python bench/run_small_faces_bench.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "faceswap_studio"))

from fs_media import grace_hopper_jpeg  # noqa: E402
from test_detect import faces_at  # noqa: E402  (one frame builder for the tests and the bench)

from genstudio.faceswap.engine import MIN_FACE, FaceSwapper, SwapOptions  # noqa: E402
from genstudio.faceswap.landmarks import FaceLandmarker, present  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    lm = FaceLandmarker()
    recall: dict[str, dict[str, str]] = {}
    cost: dict[str, dict[str, float]] = {}
    for w, h in ((640, 480), (1280, 720), (1920, 1080)):
        key = f"{w}x{h}"
        recall[key], times = {}, {"off": [], "on": []}
        for px in (24, 32, 48, 64, 96):
            sizes = [px] * min(3, w // (round(px / 0.22) + 10), h // round(px / 0.22) * 3)
            frame = faces_at(w, h, sizes)
            for mode, min_face in (("off", None), ("on", MIN_FACE)):
                t = time.perf_counter()
                found = [d for d in lm.detect(frame, min_face=min_face)
                         if present(lm.landmarks_from_detection(frame, d))]
                times[mode].append(time.perf_counter() - t)
                recall[key][f"{px}px {mode}"] = f"{len(found)}/{len(sizes)}"
        cost[key] = {mode: round(1000 * statistics.median(v), 1) for mode, v in times.items()}
        print(key, recall[key], cost[key], flush=True)
    # A 720p video: two people, one small.
    from genstudio.faceswap.pipeline import swap_video

    work = Path(tempfile.mkdtemp(prefix="genstudio-smallfaces-"))
    clip = work / "in.mp4"
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(str(clip), (1280, 720), fps=30, codec="libx264", quality=None,
                                         output_params=["-crf", "18"], macro_block_size=1)
    writer.send(None)
    base = faces_at(1280 + 64, 720, [150, 40])
    for i in range(60):
        writer.send(np.ascontiguousarray(base[:, i:i + 1280][:, :, ::-1]))
    writer.close()
    source = cv2.imdecode(np.frombuffer(grace_hopper_jpeg(), np.uint8), cv2.IMREAD_COLOR)
    swapper = FaceSwapper()
    swapper.set_source(source)
    video: dict[str, dict[str, list[float]]] = {"on": {"fps": [], "faces": []}, "off": {"fps": [], "faces": []}}
    for _ in range(args.repeats):
        for mode in ("off", "on"):
            t = time.perf_counter()
            stats = swap_video(swapper, clip, work / f"out-{mode}.mp4",
                               SwapOptions(many_faces=True, small_faces=mode == "on"))
            elapsed = time.perf_counter() - t
            video[mode]["fps"].append(60 / elapsed)
            video[mode]["faces"].append(float(stats["faces_seen"]))
    summary = {m: {"fps_median": round(statistics.median(v["fps"]), 2),
                   "faces_seen": v["faces"][-1]} for m, v in video.items()}
    summary["fps_ratio_on_vs_off"] = round(summary["on"]["fps_median"] / summary["off"]["fps_median"], 3)
    print(summary, flush=True)
    out = {"min_face_px": MIN_FACE, "recall": recall, "detect_ms_median": cost,
           "video_720p_two_people": summary, "repeats": args.repeats}
    (ROOT / "bench" / "results" / "small_faces.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
