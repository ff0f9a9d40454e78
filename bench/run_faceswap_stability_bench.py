"""How still the swap holds: the temporal change a video swap adds over a perfectly stable swap of the same
motion (the issue's measure), on panning, rotating and zooming clips.

The stable floor: the astronaut photo (public domain) is swapped once, as a still (Grace Hopper's face, public
domain), and that swapped photo is moved exactly as the target clip moves the original: a swap that holds
perfectly still on the face gives those frames. Both clips go through the same x264 encode (crf 20) as the
output. Measured inside the face (the photo's face oval carried by the known motion): the mean frame-to-frame
change of the swap's output, over the floor's. "Added change" = ratio - 1 (goal: at most 20%).

Rows: the swap as it runs (smoothed); with the smoother's previous settings; without landmark smoothing; without
the colour memory (each frame's own colour statistics, engine.COLOUR_MEMORY = 0); and the render alone, fed the
true landmarks (the photo's landmarks carried by the known motion, no tracking): what the tracking adds is the
difference to that row. And the smoother's lag (smoothed against raw landmarks) on a face moving steadily at 4,
12 and 24 px a frame, now and with the previous settings.

    .venv/bin/python bench/run_faceswap_stability_bench.py [--frames 90] [--out bench/results/faceswap-stability.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run_faceswap_bench import astronaut, background, grace_hopper, place  # noqa: E402

from genstudio.faceswap import engine  # noqa: E402
from genstudio.faceswap.engine import FACE_OVAL, FaceSwapper, SwapOptions, _Face, swap_image  # noqa: E402
from genstudio.faceswap.media import VideoWriter, read_frames  # noqa: E402
from genstudio.faceswap.pipeline import _swap_video  # noqa: E402


def motion(kind: str, i: int) -> np.ndarray:
    """2x3 placement of the 512-px photo in the 640x480 frame at frame i."""
    cx, cy, size, angle = 320.0, 250.0, 420.0, 0.0
    if kind == "pan":
        cx += 90 * np.sin(i / 20)
    elif kind == "rotate":
        angle = 12 * np.sin(i / 15)
    elif kind == "zoom":
        size *= 1 + 0.25 * np.sin(i / 18)
    elif kind == "pan + rotate + zoom":
        cx += 70 * np.sin(i / 25)
        cy += 20 * np.sin(i / 17)
        angle = 7 * np.sin(i / 30)
        size *= 1 + 0.15 * np.sin(i / 40)
    m = cv2.getRotationMatrix2D((256, 256), angle, size / 512)
    m[:, 2] += np.array([cx, cy]) - 256
    return m


def write(frames: list[np.ndarray], path: Path) -> Path:
    with VideoWriter(path, 640, 480, 30.0, crf=20) as w:
        for f in frames:
            w.write(f)
    return path


def change(frames: list[np.ndarray], masks: list[np.ndarray]) -> float:
    steps = [np.abs(frames[t].astype(np.int16) - frames[t - 1]).mean(axis=2)[masks[t] & masks[t - 1]].mean()
             for t in range(1, len(frames))]
    return float(np.mean(steps))


PREVIOUS_SMOOTHING = ((1.0, 1.0), (0.5, 0.1))  # the smoother's One-Euro settings before this bench tuned them


def lag(swapper: FaceSwapper, photo: np.ndarray, smoothing: tuple) -> dict[str, float]:
    """The smoother's lag: mean distance (px) between the smoothed and the raw landmarks of a 300-px face moving
    steadily across the frame at 4, 12 and 24 px a frame (after the first 5 frames)."""
    saved = engine.POSE_SMOOTHING, engine.SHAPE_SMOOTHING
    engine.POSE_SMOOTHING, engine.SHAPE_SMOOTHING = smoothing
    out = {}
    try:
        for speed in (4, 12, 24):
            raw_track, smooth_track = (swapper.new_track(SwapOptions(smoothing=False)),
                                       swapper.new_track(SwapOptions()))
            gaps = []
            for i in range(int(min(40, 420 / speed))):
                m = cv2.getRotationMatrix2D((256, 256), 0.0, 300 / 512)
                m[:, 2] += np.array([100 + speed * i, 240]) - 256
                frame = place(background(), photo, m)
                raw = swapper.update(frame, raw_track)[0].raw
                smoothed = swapper.update(frame, smooth_track)[0].smoothed
                gaps.append(float(np.linalg.norm(smoothed - raw, axis=1).mean()))
            out[f"{speed} px/frame"] = round(float(np.mean(gaps[5:])), 2)
    finally:
        engine.POSE_SMOOTHING, engine.SHAPE_SMOOTHING = saved
    return out


def true_landmarks(pts: np.ndarray, placements: list[np.ndarray]):  # noqa: ANN201
    """A stand-in for FaceSwapper.update: the photo's own landmarks carried by each frame's placement."""

    def update(frame: np.ndarray, track) -> list:  # noqa: ANN001
        m = placements[track.frame_index]
        moved = (pts @ m[:, :2].T + m[:, 2]).astype(np.float32)
        if not track.faces:
            track.faces = [_Face(ident=0, order=0, raw=moved, smoothed=moved, smoother=None)]
        track.faces[0].raw = track.faces[0].smoothed = moved
        track.frame_index += 1
        return track.faces

    return update


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "faceswap-stability.json"))
    args = ap.parse_args()
    photo = cv2.resize(astronaut(), (512, 512))
    swapper = FaceSwapper()
    swapper.set_source(grace_hopper())
    still, n = swap_image(swapper, photo, SwapOptions())
    assert n == 1
    pts = swapper._largest_face(photo, "photo")
    oval = np.zeros((512, 512), np.uint8)
    cv2.fillConvexPoly(oval, cv2.convexHull(pts[FACE_OVAL].astype(np.int32)), 255)
    oval = cv2.erode(oval, np.ones((9, 9), np.uint8))  # the inside of the face, not its edge
    bg = background()
    result: dict = {"frames": args.frames, "clips": {}}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for kind in ("pan", "rotate", "zoom", "pan + rotate + zoom"):
            ms = [motion(kind, i) for i in range(args.frames)]
            clip = write([place(bg, photo, m) for m in ms], tmp / "in.mp4")
            floor = list(read_frames(write([place(bg, still, m) for m in ms], tmp / "floor.mp4")))
            masks = [cv2.warpAffine(oval, m, (640, 480)) > 127 for m in ms]
            row = {}
            for name in ("smoothed", "previous smoothing", "unsmoothed", "no colour memory",
                         "true landmarks (render alone)"):
                memory, pose, shape = engine.COLOUR_MEMORY, engine.POSE_SMOOTHING, engine.SHAPE_SMOOTHING
                if name == "no colour memory":
                    engine.COLOUR_MEMORY = 0.0
                if name == "previous smoothing":
                    engine.POSE_SMOOTHING, engine.SHAPE_SMOOTHING = PREVIOUS_SMOOTHING
                if name.startswith("true landmarks"):
                    swapper.update = true_landmarks(pts, ms)  # type: ignore[method-assign]
                try:
                    _swap_video(swapper, clip, tmp / "out.mp4", SwapOptions(smoothing=name != "unsmoothed"),
                                label_corner="bottom-right", label=False, watermark=False, crf=20, progress=None)
                finally:
                    engine.COLOUR_MEMORY, engine.POSE_SMOOTHING, engine.SHAPE_SMOOTHING = memory, pose, shape
                    swapper.__dict__.pop("update", None)
                out = list(read_frames(tmp / "out.mp4"))
                ratio = change(out, masks) / change(floor, masks)
                row[name] = {"change_out": round(change(out, masks), 3),
                             "change_floor": round(change(floor, masks), 3),
                             "added_change_pct": round(100 * (ratio - 1), 1)}
            result["clips"][kind] = row
            print(kind, json.dumps(row), flush=True)
    result["lag_px"] = {"now": lag(swapper, photo, (engine.POSE_SMOOTHING, engine.SHAPE_SMOOTHING)),
                        "previous smoothing": lag(swapper, photo, PREVIOUS_SMOOTHING)}
    print("lag", json.dumps(result["lag_px"]), flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
