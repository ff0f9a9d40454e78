"""Video watermark robustness, side by side in one run: the face-swap studio's frames marked with the image
mark (`provenance.videomark`, every frame, since this version) against the previous per-frame mark
(`faceswap/video_watermark.py`, every 4th frame), on the same clips and the same copies, read the way
`genstudio verify` reads them (the studio's own inspector: `verify_media.video_report` for videos,
`verify_bytes` for stills).

Clips: the astronaut photo (public domain) moving over a background (pan, zoom, tilt, as in the face-swap
bench), 120 frames at 30 fps, written as each version of the pipeline writes them (x264 veryfast crf 20; now
without B-frames, pipeline.X264_PARAMS): one over a flat
gradient (little texture to hide a mark in), one over scikit-image's coffee photo, and a 1280x720 one.
Copies: re-encodes at crf 23 and 28, scaled, cropped, brightened, and stills taken from the video (a key
frame and a predicted frame saved as PNG, a screenshot of a predicted frame at an offset in a bigger
window). Cells: found or not, the bits corrected (new) or wrong (old), and where it was read.
Also the cost: PSNR and embed ms per frame at 640x480 and 1920x1080 (medians).

    .venv/bin/python bench/run_video_mark_bench.py [--frames 120] [--out bench/results/video_mark.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run_faceswap_bench import astronaut, background, motion, place, placement  # noqa: E402

from genstudio.faceswap import verify_media  # noqa: E402
from genstudio.faceswap.media import VideoWriter, ffmpeg_exe  # noqa: E402
from genstudio.faceswap.pipeline import X264_PARAMS  # noqa: E402
from genstudio.faceswap.video_watermark import embed_frame  # noqa: E402
from genstudio.provenance.verify import verify_bytes  # noqa: E402
from genstudio.provenance.videomark import FrameMarker  # noqa: E402

IDENT = bytes.fromhex("7e57c0ffee42")

COPIES: dict[str, list[str] | None] = {  # ffmpeg -vf and crf of a re-encode (None: the output itself)
    "the output (crf 20)": None,
    "x264 crf 23": ["null", "23"],
    "x264 crf 28": ["null", "28"],
    "scaled 0.75x, crf 23": ["scale=trunc(iw*0.75/2)*2:trunc(ih*0.75/2)*2", "23"],
    "scaled 0.75x, crf 28": ["scale=trunc(iw*0.75/2)*2:trunc(ih*0.75/2)*2", "28"],
    "scaled 0.5x, crf 23": ["scale=trunc(iw*0.5/2)*2:trunc(ih*0.5/2)*2", "23"],
    "scaled 1.5x, crf 23": ["scale=trunc(iw*1.5/2)*2:trunc(ih*1.5/2)*2", "23"],
    "cropped 10% each side, crf 23": ["crop=trunc(iw*0.8/2)*2:trunc(ih*0.8/2)*2", "23"],
    "cropped 25% from the left, crf 23": ["crop=trunc(iw*0.75/2)*2:ih:iw-trunc(iw*0.75/2)*2:0", "23"],
    "cropped 10% each side, crf 28": ["crop=trunc(iw*0.8/2)*2:trunc(ih*0.8/2)*2", "28"],
    "brightness +0.08, crf 23": ["eq=brightness=0.08", "23"],
}


def clip(bg: np.ndarray, frames: int) -> list[np.ndarray]:
    photo = astronaut()
    h, w = bg.shape[:2]
    k = w / 640
    out = []
    for i in range(frames):
        cx, cy, size, angle = motion(i)
        out.append(place(bg, photo, placement(photo, cx * k, cy * k, size * k, angle)))
    return out


def write(frames: list[np.ndarray], path: Path, x264_params: str | None = None) -> Path:
    h, w = frames[0].shape[:2]
    with VideoWriter(path, w, h, 30.0, crf=20, x264_params=x264_params) as writer:
        for f in frames:
            writer.write(f)
    return path


def reencode(src: Path, vf: str, crf: str, dst: Path) -> Path:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-vf", vf, "-c:v",
                    "libx264", "-preset", "medium", "-crf", crf, "-pix_fmt", "yuv420p", str(dst)], check=True)
    return dst


def frame_png(src: Path, index: int, screenshot: bool = False) -> bytes:
    from genstudio.faceswap.media import read_frames

    for i, f in enumerate(read_frames(src)):
        if i == index:
            frame = f
            break
    if screenshot:  # the frame in a player window: a title bar, a margin, at an offset
        h, w = frame.shape[:2]
        canvas = np.full((h + 160, w + 220, 3), 236, np.uint8)
        canvas[:40] = 60
        canvas[97:97 + h, 131:131 + w] = frame
        frame = canvas
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame[:, :, ::-1])).save(buf, "PNG")
    return buf.getvalue()


def cell(report: dict[str, Any]) -> dict[str, Any]:
    wm = report["watermark"]
    return {"found": bool(wm.get("found")), "method": wm.get("method"), "bit_errors": wm.get("bit_errors"),
            "read_from": wm.get("read_from"), "sync_z": wm.get("sync_z")}


def run_clip(name: str, frames: list[np.ndarray], tmp: Path) -> dict[str, Any]:
    marker = FrameMarker(IDENT)
    marks = {"videomark (now)": [marker.embed(f) for f in frames],
             "video_watermark (before)": [embed_frame(f, i) for i, f in enumerate(frames)]}
    rows: dict[str, dict[str, Any]] = {}
    for mark, marked in marks.items():
        # As each studio version wrote them: now without B-frames (pipeline.X264_PARAMS), before with.
        out = write(marked, tmp / "out.mp4", X264_PARAMS if mark.startswith("videomark") else None)
        for copy, how in COPIES.items():
            path = out if how is None else reencode(out, how[0], how[1], tmp / "copy.mp4")
            t = time.perf_counter()
            found = cell(verify_media.video_report(path.read_bytes()))
            found["read_s"] = round(time.perf_counter() - t, 2)
            rows.setdefault(copy, {})[mark] = found
            print(name, mark, copy, found, flush=True)
        for copy, data in (("key frame 0 saved as PNG", frame_png(out, 0)),
                           ("predicted frame 37 saved as PNG", frame_png(out, 37)),
                           ("screenshot of frame 37 (offset, window)", frame_png(out, 37, screenshot=True))):
            found = cell(verify_bytes(data, filename="frame.png", inspectors=[verify_media.inspect]))
            rows.setdefault(copy, {})[mark] = found
            print(name, mark, copy, found, flush=True)
    # False finds: the clip unmarked, through the same reader.
    plain = write(frames, tmp / "plain.mp4")
    rows["unmarked clip (false finds)"] = {"any": cell(verify_media.video_report(plain.read_bytes()))}
    return rows


def cost(frames: list[np.ndarray]) -> dict[str, Any]:
    marker = FrameMarker(IDENT)
    new_ms, old_ms, new_psnr, old_psnr = [], [], [], []
    for i, f in enumerate(frames):
        t = time.perf_counter()
        m = marker.embed(f)
        new_ms.append(1000 * (time.perf_counter() - t))
        new_psnr.append(cv2.PSNR(f, m))
        t = time.perf_counter()
        o = embed_frame(f, i)
        old_ms.append(1000 * (time.perf_counter() - t))
        if i % 4 == 0:
            old_psnr.append(cv2.PSNR(f, o))
    return {"videomark (now)": {"embed_ms_median": round(statistics.median(new_ms), 2),
                                "psnr_db_median": round(statistics.median(new_psnr), 2)},
            "video_watermark (before)": {"embed_ms_mean (marks every 4th frame)": round(statistics.mean(old_ms), 2),
                                         "psnr_db_median (marked frames)": round(statistics.median(old_psnr), 2)}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "video_mark.json"))
    args = ap.parse_args()
    from skimage.data import coffee

    coffee_bg = cv2.resize(cv2.cvtColor(coffee(), cv2.COLOR_RGB2BGR), (640, 480))
    clips = {"gradient background 640x480": clip(background(), args.frames),
             "coffee background 640x480": clip(coffee_bg, args.frames),
             "coffee background 1280x720": clip(cv2.resize(coffee_bg, (1280, 720)), args.frames)}
    results: dict[str, Any] = {"frames": args.frames, "clips": {}, "cost": {}}
    with tempfile.TemporaryDirectory() as d:
        for name, frames in clips.items():
            results["clips"][name] = run_clip(name, frames, Path(d))
    results["cost"]["640x480"] = cost(clips["coffee background 640x480"][:60])
    big = [cv2.resize(f, (1920, 1080)) for f in clips["coffee background 640x480"][:30]]
    results["cost"]["1920x1080"] = cost(big)
    results["machine"] = {"cpus": os.cpu_count()}
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(json.dumps(results["cost"], indent=1))


if __name__ == "__main__":
    main()
