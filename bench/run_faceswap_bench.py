"""Face-swap benchmark: end-to-end speed with and without the safeguards, side by side in one run, and quality.

1. Speed: a 640x480, 150-frame, 30 fps clip with audio built from the public-domain test photos; swap_video
   with the safeguards (label + watermark) and without, runs interleaved; median fps, per-stage ms per frame
   and the safeguard cost ratio (seconds with / seconds without).
2. Quality on the output: landmark error of the swapped face against the target's pose (mesh on output frames
   vs mesh on input frames, over the inter-ocular distance), temporal jitter of the face region vs the input's
   (mean frame-to-frame change inside the face, and landmark acceleration), with and without smoothing.
3. Smoothing on synthetic motion with known truth: static face + noise, steady pan, accelerating wave; and the
   flicker the swap adds on a still face with camera noise.

    .venv/bin/python bench/run_faceswap_bench.py [--repeats 3] [--frames 150] [--out bench/results/faceswap.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from genstudio.faceswap import verify_media
from genstudio.faceswap.engine import FaceSwapper, SwapOptions, swap_image
from genstudio.faceswap.landmarks import FACE_OVAL, FaceLandmarker
from genstudio.faceswap.media import ffmpeg_exe, probe, read_frames
from genstudio.faceswap.pipeline import _swap_video

ROOT = Path(__file__).resolve().parents[1]


def astronaut() -> np.ndarray:
    from skimage.data import astronaut as photo

    return cv2.cvtColor(photo(), cv2.COLOR_RGB2BGR)


def grace_hopper() -> np.ndarray:
    from matplotlib import cbook

    return cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))


def background(width: int = 640, height: int = 480) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    grad = (60 + 60 * xs / width + 40 * ys / height).astype(np.uint8)
    return cv2.merge([grad, (grad * 0.9).astype(np.uint8), (grad * 0.8).astype(np.uint8)])


def placement(photo: np.ndarray, cx: float, cy: float, size: float, angle: float) -> np.ndarray:
    h, w = photo.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, size / w)
    m[:, 2] += np.array([cx, cy]) - np.array([w / 2, h / 2])
    return m


def place(canvas: np.ndarray, photo: np.ndarray, m: np.ndarray) -> np.ndarray:
    size = (canvas.shape[1], canvas.shape[0])
    mask = cv2.warpAffine(np.full(photo.shape[:2], 255, np.uint8), m, size) > 127
    out = canvas.copy()
    out[mask] = cv2.warpAffine(photo, m, size)[mask]
    return out


def motion(i: int) -> tuple[float, float, float, float]:
    """Pan, zoom and tilt: the kind of head motion a talking-head clip has."""
    return (320 + 70 * np.sin(i / 25), 250 + 25 * np.sin(i / 17), 560 + 70 * np.sin(i / 40), 7 * np.sin(i / 30))


def build_clip(path: Path, frames: int, fps: float = 30.0) -> Path:
    photo, bg = astronaut(), background()
    raw = b"".join(place(bg, photo, placement(photo, *motion(i))).tobytes() for i in range(frames))
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
                    "-s", "640x480", "-framerate", str(fps), "-i", "-", "-f", "lavfi", "-i",
                    f"sine=frequency=440:duration={frames / fps}", "-c:v", "libx264", "-preset", "fast", "-crf", "16",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)], input=raw, check=True)
    return path


def landmarks_per_frame(landmarker: FaceLandmarker, frames: list[np.ndarray]) -> list[np.ndarray | None]:
    out = []
    for frame in frames:
        dets = landmarker.detect(frame)
        mesh = landmarker.landmarks_from_detection(frame, dets[0]) if dets else None
        out.append(mesh.landmarks if mesh is not None and mesh.presence > 0.5 else None)
    return out


def quality(landmarker: FaceLandmarker, inputs: list[np.ndarray], outputs: list[np.ndarray]) -> dict:
    lm_in, lm_out = landmarks_per_frame(landmarker, inputs), landmarks_per_frame(landmarker, outputs)
    nme, px = [], []
    for a, b in zip(lm_in, lm_out, strict=True):
        if a is not None and b is not None:
            iod = np.linalg.norm(a[33] - a[263])
            err = np.linalg.norm(a - b, axis=1).mean()
            nme.append(err / iod)
            px.append(err)
    pixel_in, pixel_out = [], []
    for t in range(1, len(inputs)):
        if lm_in[t] is None:
            continue
        mask = np.zeros(inputs[t].shape[:2], np.uint8)
        cv2.fillConvexPoly(mask, cv2.convexHull(lm_in[t][FACE_OVAL].astype(np.int32)), 1)
        mask = mask.astype(bool)
        pixel_in.append(np.abs(inputs[t].astype(np.int16) - inputs[t - 1]).mean(axis=2)[mask].mean())
        pixel_out.append(np.abs(outputs[t].astype(np.int16) - outputs[t - 1]).mean(axis=2)[mask].mean())

    def acceleration(series: list[np.ndarray | None]) -> float:
        acc = [np.linalg.norm(series[t + 1] - 2 * series[t] + series[t - 1], axis=1).mean()
               for t in range(1, len(series) - 1) if all(s is not None for s in series[t - 1:t + 2])]
        return float(np.mean(acc))

    acc_in, acc_out = acceleration(lm_in), acceleration(lm_out)
    return {"landmark_nme": round(float(np.mean(nme)), 4), "landmark_error_px": round(float(np.mean(px)), 3),
            "frames_measured": len(nme),
            "face_temporal_diff_in": round(float(np.mean(pixel_in)), 3),
            "face_temporal_diff_out": round(float(np.mean(pixel_out)), 3),
            "face_temporal_diff_ratio": round(float(np.mean(pixel_out) / np.mean(pixel_in)), 3),
            "landmark_accel_in_px": round(acc_in, 3), "landmark_accel_out_px": round(acc_out, 3),
            "landmark_accel_ratio": round(acc_out / acc_in, 3)}


def smoothing_study(swapper: FaceSwapper) -> dict:
    """Landmark error against the known truth and frame-to-frame jitter, raw mesh vs smoothed."""
    photo, bg = astronaut(), background()
    truth_track = swapper.new_track(SwapOptions(smoothing=False))
    base = swapper.update(photo, truth_track)[0].raw
    rng = np.random.default_rng(0)
    kinds = {
        "static_noise6": (lambda i: (320, 240, 520, 0.0), 6.0),
        "pan_4px_per_frame": (lambda i: (180 + 4 * i, 240, 520, 0.0), 2.0),
        "wave_accelerating": (lambda i: (320 + 60 * np.sin(i / 8), 240 + 20 * np.sin(i / 11),
                                         540 + 60 * np.sin(i / 13), 8 * np.sin(i / 10)), 2.0),
    }
    out = {}
    for name, (pose, noise) in kinds.items():
        frames, truth = [], []
        for i in range(70):
            m = placement(photo, *pose(i))
            f = place(bg, photo, m).astype(np.float32) + rng.normal(0, noise, (480, 640, 3))
            frames.append(np.clip(f, 0, 255).astype(np.uint8))
            truth.append(base @ m[:, :2].T + m[:, 2])
        truth_arr = np.array(truth)[10:]
        row = {}
        for label, smoothing in (("raw", False), ("smoothed", True)):
            track = swapper.new_track(SwapOptions(smoothing=smoothing))
            pts = np.array([swapper.update(f, track)[0].smoothed for f in frames])[10:]
            err = pts - truth_arr
            row[label] = {"error_px": round(float(np.linalg.norm(err, axis=2).mean()), 3),
                          "jitter_px": round(float(np.linalg.norm(np.diff(err, axis=0), axis=2).mean()), 3)}
        out[name] = row
    return out


def static_flicker(swapper: FaceSwapper) -> dict:
    """Mean frame-to-frame change inside the face on a still face with camera noise (sigma 3): the input's is
    noise only, so anything above it in the output is flicker the swap adds."""
    photo = astronaut()
    rng = np.random.default_rng(0)
    base = place(background(), photo, placement(photo, 320, 240, 560, 3)).astype(np.float32)
    frames = [np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8) for _ in range(60)]
    dets = swapper.landmarker.detect(frames[0])
    pts = swapper.landmarker.landmarks_from_detection(frames[0], dets[0]).landmarks
    mask = np.zeros((480, 640), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(pts[FACE_OVAL].astype(np.int32)), 1)
    mask = mask.astype(bool)

    def change(seq: list[np.ndarray]) -> float:
        return round(float(np.mean([np.abs(seq[t].astype(np.int16) - seq[t - 1]).mean(axis=2)[mask].mean()
                                    for t in range(5, len(seq))])), 3)

    out = {"input": change(frames)}
    for label, smoothing in (("output_raw", False), ("output_smoothed", True)):
        track = swapper.new_track(SwapOptions(smoothing=smoothing))
        out[label] = change([swapper.swap_frame(f, track)[0] for f in frames])
    return out


def cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (the ffmpeg decoder and encoder)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "faceswap.json")
    parser.add_argument("--images", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    load_start = os.getloadavg()

    swapper = FaceSwapper()
    swapper.set_source(grace_hopper())
    landmarker = swapper.landmarker
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = build_clip(tmp / "clip.mp4", args.frames)
        info = probe(clip)
        runs: dict[str, list[dict]] = {"without_safeguards": [], "with_safeguards": []}
        for _ in range(args.repeats):
            for name, safe in (("without_safeguards", False), ("with_safeguards", True)):
                cpu0 = cpu_seconds()
                stats = _swap_video(swapper, clip, tmp / f"{name}.mp4", SwapOptions(), label_corner="bottom-right",
                                    label=safe, watermark=safe, crf=20, progress=None)
                stats["cpu_s"] = cpu_seconds() - cpu0
                stats["bytes"] = (tmp / f"{name}.mp4").stat().st_size
                runs[name].append(stats)
                print(f"{name}: {stats['fps']:.1f} fps, {stats['cpu_s']:.2f} CPU s", flush=True)
        speed = {}
        for name, stats in runs.items():
            speed[name] = {
                "fps_median": round(statistics.median(s["fps"] for s in stats), 1),
                "fps_runs": [round(s["fps"], 1) for s in stats],
                "cpu_ms_per_frame": round(1000 * statistics.median(s["cpu_s"] for s in stats) / args.frames, 2),
                "output_bytes": stats[-1]["bytes"],
                "ms_per_frame": {stage: round(1000 * statistics.median(s["seconds"][stage] for s in stats)
                                              / args.frames, 2)
                                 for stage in ("decode", "swap", "label", "watermark", "encode", "total")},
            }
        ratio = (statistics.median(s["seconds"]["total"] for s in runs["with_safeguards"])
                 / statistics.median(s["seconds"]["total"] for s in runs["without_safeguards"]))
        cpu_ratio = (statistics.median(s["cpu_s"] for s in runs["with_safeguards"])
                     / statistics.median(s["cpu_s"] for s in runs["without_safeguards"]))

        inputs = list(read_frames(clip))
        outputs = list(read_frames(tmp / "with_safeguards.mp4"))
        plain = list(read_frames(tmp / "without_safeguards.mp4"))
        _swap_video(swapper, clip, tmp / "unsmoothed.mp4", SwapOptions(smoothing=False), label_corner="bottom-right",
                    label=True, watermark=True, crf=20, progress=None)
        unsmoothed = list(read_frames(tmp / "unsmoothed.mp4"))
        watermark = verify_media.video_report((tmp / "with_safeguards.mp4").read_bytes())["watermark"]
        # Control: the target's own face swapped onto itself, so texture differences between the two people
        # drop out and what remains is what the swap adds (warp, blend, smoothing).
        self_swapper = FaceSwapper()
        self_swapper.set_source(astronaut())
        self_swap = {}
        for label, smoothing in (("smoothed", True), ("unsmoothed", False)):
            _swap_video(self_swapper, clip, tmp / "self.mp4", SwapOptions(smoothing=smoothing),
                        label_corner="bottom-right", label=False, watermark=False, crf=20, progress=None)
            self_swap[label] = quality(landmarker, inputs, list(read_frames(tmp / "self.mp4")))

        # Before/after images for the docs.
        args.images.mkdir(parents=True, exist_ok=True)
        k = args.frames // 2
        cv2.imwrite(str(args.images / "faceswap-video-before-after.jpg"), np.hstack([inputs[k], outputs[k]]),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        still, _ = swap_image(swapper, astronaut(), SwapOptions())
        src = cv2.resize(grace_hopper(), (int(512 * 512 / 600), 512))
        cv2.imwrite(str(args.images / "faceswap-still-source-target-result.jpg"),
                    np.hstack([src, astronaut(), still]), [cv2.IMWRITE_JPEG_QUALITY, 90])

        result = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                        "note": "2 cores, possibly shared with other work (see loadavg): wall-clock ratios are "
                                "noisy, the CPU-time ratio is the steadier measure",
                        "loadavg_at_start": load_start, "loadavg_at_end": os.getloadavg()},
            "clip": {"width": info.width, "height": info.height, "frames": info.frames, "fps": info.fps,
                     "audio": info.has_audio, "repeats": args.repeats, "x264": "veryfast crf 20"},
            "watermark": {"method": "videomark (syncmark on every frame)", "detect": watermark},
            "speed": speed,
            "safeguard_cost_ratio": round(ratio, 3),
            "safeguard_cpu_ratio": round(cpu_ratio, 3),
            "quality_smoothed": quality(landmarker, inputs, outputs),
            "quality_smoothed_no_safeguards": quality(landmarker, inputs, plain),
            "quality_unsmoothed": quality(landmarker, inputs, unsmoothed),
            "quality_self_swap_control": self_swap,
            "smoothing_synthetic": smoothing_study(swapper),
            "static_face_flicker": static_flicker(swapper),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
