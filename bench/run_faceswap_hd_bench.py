"""Face swap at 1080p: end-to-end speed with every safeguard on, side by side in one run: the pipeline's stages
overlapped in threads (decode / swap / label + mark + encode, now) against the stages in turn on one thread,
and the face rendered at a bounded working size (engine.WORK_SIDE) against its full size; plus 640x480, and
the fade-in of a face that returns to the frame.

1. Speed: clips built from the public-domain astronaut photo moving over a background (pan, zoom, tilt as
   in the face-swap bench), the face about 560-700 px tall at 1920x1080 and about 200 px at 640x480; swap_video
   with label + watermark + x264 (veryfast crf 20) + audio, runs interleaved; median fps, ms per stage (with
   overlapped stages the label, mark and encode times are spent in their own thread, beside the swap's) and
   CPU ms per frame (this process and ffmpeg's).
2. Return: the face leaves the frame for 20 frames and comes back; the swap's change to the face box on the
   frame it returns (mean absolute difference from the input, in grey levels) and on the frames after, with
   the fade-in (engine.FADE_IN_SECONDS) and without it.

    .venv/bin/python bench/run_faceswap_hd_bench.py [--repeats 3] [--frames 90] [--out bench/results/faceswap-hd.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run_faceswap_bench import astronaut, background, cpu_seconds, grace_hopper, motion, place, placement  # noqa: E402

from genstudio.faceswap import engine  # noqa: E402
from genstudio.faceswap.engine import FaceSwapper, SwapOptions  # noqa: E402
from genstudio.faceswap.media import ffmpeg_exe, read_frames  # noqa: E402
from genstudio.faceswap.pipeline import _swap_video  # noqa: E402


def build(path: Path, width: int, height: int, frames: int, leave: tuple[int, int] | None = None) -> Path:
    photo = astronaut()
    bg = cv2.resize(background(), (width, height))
    k = width / 640
    raw = []
    for i in range(frames):
        cx, cy, size, angle = motion(i)
        if leave and leave[0] <= i < leave[1]:
            raw.append(bg)
            continue
        raw.append(place(bg, photo, placement(photo, cx * k, cy * k, size * k, angle)))
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
                    "-s", f"{width}x{height}", "-framerate", "30", "-i", "-", "-f", "lavfi", "-i",
                    f"sine=frequency=440:duration={frames / 30}", "-c:v", "libx264", "-preset", "fast", "-crf", "16",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)],
                   input=b"".join(f.tobytes() for f in raw), check=True)
    return path


def speed(swapper: FaceSwapper, clip: Path, tmp: Path, repeats: int) -> dict:
    runs: dict[str, list[dict]] = {"bounded working size, stages overlapped (now)": [],
                                   "bounded working size, stages in turn": [],
                                   "full face size, stages overlapped": []}
    saved = engine.WORK_SIDE
    try:
        for _ in range(repeats):
            for name in runs:
                engine.WORK_SIDE = 100_000 if name.startswith("full") else saved
                cpu = cpu_seconds()
                stats = _swap_video(swapper, clip, tmp / "out.mp4", SwapOptions(), label_corner="bottom-right",
                                    label=True, watermark=True, crf=20, progress=None,
                                    overlap="in turn" not in name)
                stats["cpu_ms"] = 1000 * (cpu_seconds() - cpu) / stats["frames"]
                runs[name].append(stats)
    finally:
        engine.WORK_SIDE = saved
    out = {}
    for name, stats in runs.items():
        frames = stats[0]["frames"]
        out[name] = {"fps_median": round(statistics.median(s["fps"] for s in stats), 1),
                     "fps_runs": [round(s["fps"], 1) for s in stats],
                     "cpu_ms_per_frame_median": round(statistics.median(s["cpu_ms"] for s in stats), 2),
                     "ms_per_frame": {k: round(1000 * statistics.median(s["seconds"][k] for s in stats) / frames, 2)
                                      for k in stats[0]["seconds"]}}
    now, in_turn, full = (out[k]["fps_median"] for k in runs)
    out["speedup, overlapped stages"] = round(now / in_turn, 2)
    out["speedup, bounded working size"] = round(now / full, 2)
    return out


def face_change(inputs: list[np.ndarray], outputs: list[np.ndarray], box: tuple[int, int, int, int]) -> list[float]:
    x0, y0, x1, y1 = box
    return [round(float(np.abs(o[y0:y1, x0:x1].astype(np.int16) - i[y0:y1, x0:x1]).mean()), 2)
            for i, o in zip(inputs, outputs, strict=True)]


def returning(swapper: FaceSwapper, tmp: Path) -> dict:
    clip = build(tmp / "leave.mp4", 640, 480, 60, leave=(20, 40))
    inputs = list(read_frames(clip))
    result = {}
    saved = engine.FADE_IN_SECONDS
    try:
        for name, fade in (("fade-in (now)", saved), ("no fade (before)", 0.0)):
            engine.FADE_IN_SECONDS = fade
            _swap_video(swapper, clip, tmp / "ret.mp4", SwapOptions(), label_corner="bottom-right", label=False,
                        watermark=False, crf=20, progress=None)
            outputs = list(read_frames(tmp / "ret.mp4"))
            cx, cy, size, _ = motion(40)
            box = (int(cx - size * 0.3), int(cy - size * 0.35), int(cx + size * 0.3), int(cy + size * 0.25))
            change = face_change(inputs[38:48], outputs[38:48], box)
            result[name] = {"frames 38-47 (returns at 40)": change, "first frame back": change[2],
                            "steady (frames 45-47)": round(statistics.mean(change[7:]), 2)}
    finally:
        engine.FADE_IN_SECONDS = saved
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "faceswap-hd.json"))
    args = ap.parse_args()
    swapper = FaceSwapper()
    swapper.set_source(grace_hopper())
    result: dict = {"machine": {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()},
                    "work_side": engine.WORK_SIDE, "fade_in_seconds": engine.FADE_IN_SECONDS}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, (w, h) in (("1920x1080", (1920, 1080)), ("640x480", (640, 480))):
            clip = build(tmp / f"{name}.mp4", w, h, args.frames)
            result[name] = speed(swapper, clip, tmp, args.repeats)
            print(name, json.dumps(result[name]), flush=True)
        result["face returns"] = returning(swapper, tmp)
        print(json.dumps(result["face returns"]), flush=True)
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
