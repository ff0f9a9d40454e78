"""Watermark robustness, side by side in one run: the resynchronising mark (`syncmark`, images since this
version) against the DWT-DCT-SVD mark genstudio used before (imwatermark's scheme, still read for older
files), on the same pictures and the same attacks.

Pictures: scikit-image's public-domain photos (astronaut, chelsea, coffee, rocket) at 640x480, as the tests
use them. Video: the same pictures marked frame by frame in a slow pan, x264 at crf 23 and 28, read from
the key frame and from a predicted frame. Per cell: how many pictures the mark was found in, and the
median bit errors (the new mark: bits its decoder corrected; the old: bits wrong against its fixed tag).
Also: PSNR, embed and read times (median per 640x480 picture). Results: bench/results/watermark.json.

    .venv/bin/python bench/run_watermark_bench.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "provenance"))

from test_syncmark import ATTACKS, jpeg, scale, screenshot  # noqa: E402  (one list of attacks)

from genstudio.faceswap.media import ffmpeg_exe  # noqa: E402
from genstudio.provenance import syncmark  # noqa: E402
from genstudio.provenance.watermark import (  # noqa: E402
    decode_watermark_bits,
    embed_watermark_bgr,
    tag_bit_errors,
)

IDENT = bytes.fromhex("5eed5eed5eed")
MORE = {
    "scale 0.6": lambda x: scale(x, 0.6),
    "scale 1.5": lambda x: scale(x, 1.5),
    "crop 10% each side": lambda x: x[x.shape[0] // 10: -x.shape[0] // 10, x.shape[1] // 10: -x.shape[1] // 10],
    "jpeg 30": lambda x: jpeg(x, 30),
    "screenshot of 0.75x": lambda x: screenshot(scale(x, 0.75)),
}


def pictures() -> dict[str, np.ndarray]:
    from skimage import data

    return {n: cv2.resize(getattr(data, n)(), (640, 480), interpolation=cv2.INTER_AREA)
            for n in ("astronaut", "chelsea", "coffee", "rocket")}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


def new_read(x: np.ndarray) -> tuple[bool, int | None]:
    r = syncmark.read(x)
    return r.found and r.ident == IDENT, r.corrected if r.found else None


def old_read(x: np.ndarray) -> tuple[bool, int | None]:
    if x.shape[0] * x.shape[1] < 256 * 256:
        return False, None
    errors = tag_bit_errors(decode_watermark_bits(np.ascontiguousarray(x[:, :, ::-1])))
    return errors <= 10, errors


def x264(frames: list[np.ndarray], crf: int) -> np.ndarray:
    h, w = frames[0].shape[:2]
    path = Path("/tmp") / f"genstudio-wm-bench-{crf}.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                    "-s", f"{w}x{h}", "-r", "25", "-i", "-", "-c:v", "libx264", "-crf", str(crf), "-pix_fmt",
                    "yuv420p", str(path)], input=b"".join(f.tobytes() for f in frames), check=True)
    raw = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    path.unlink()
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def main() -> None:
    pics = pictures()
    marks: dict[str, dict[str, np.ndarray]] = {"syncmark": {}, "dwtDctSvd (before)": {}}
    times: dict[str, dict[str, list[float]]] = {k: {"embed_ms": [], "read_ms": []} for k in marks}
    quality: dict[str, list[float]] = {k: [] for k in marks}
    for name, rgb in pics.items():
        t = time.perf_counter()
        marks["syncmark"][name] = syncmark.embed(rgb, IDENT)
        times["syncmark"]["embed_ms"].append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        old = embed_watermark_bgr(rgb[:, :, ::-1].copy())
        marks["dwtDctSvd (before)"][name] = np.ascontiguousarray(old[:, :, ::-1])
        times["dwtDctSvd (before)"]["embed_ms"].append(1000 * (time.perf_counter() - t))
        for k in marks:
            quality[k].append(psnr(rgb, marks[k][name]))
    readers = {"syncmark": new_read, "dwtDctSvd (before)": old_read}
    rows: dict[str, dict[str, Any]] = {}
    for attack, fn in {**ATTACKS, **MORE}.items():
        rows[attack] = {}
        for k, reader in readers.items():
            found, errors = 0, []
            for name in pics:
                t = time.perf_counter()
                ok, e = reader(fn(marks[k][name]))
                times[k]["read_ms"].append(1000 * (time.perf_counter() - t))
                found += ok
                if e is not None:
                    errors.append(e)
            rows[attack][k] = {"found": found, "of": len(pics),
                               "median_bit_errors": statistics.median(errors) if errors else None}
        unmarked = sum(readers["syncmark"](fn(rgb))[0] for rgb in pics.values())
        rows[attack]["false finds on unmarked (syncmark)"] = unmarked
        print(attack, rows[attack], flush=True)
    # Video: a slow pan, each frame marked, through x264.
    video: dict[str, Any] = {}
    base = pics["astronaut"]
    for k, embed in (("syncmark", lambda f: syncmark.embed(f, IDENT)),
                     ("dwtDctSvd (before)", lambda f: embed_watermark_bgr(f[:, :, ::-1].copy())[:, :, ::-1])):
        frames = [np.ascontiguousarray(embed(np.roll(base, 3 * i, axis=1))) for i in range(25)]
        for crf in (23, 28):
            decoded = x264(frames, crf)
            key, predicted = readers[k](decoded[0]), [readers[k](f) for f in decoded[5:25:5]]
            video[f"x264 crf {crf}"] = video.get(f"x264 crf {crf}", {}) | {k: {
                "key frame": {"found": key[0], "bit_errors": key[1]},
                "predicted frames found": f"{sum(p[0] for p in predicted)}/{len(predicted)}"}}
            print(crf, k, video[f"x264 crf {crf}"][k], flush=True)
    out = {
        "pictures": list(pics), "size": "640x480",
        "psnr_db": {k: {"min": round(min(v), 2), "median": round(statistics.median(v), 2)} for k, v in quality.items()},
        "embed_ms_median": {k: round(statistics.median(v["embed_ms"]), 1) for k, v in times.items()},
        "read_ms_median": {k: round(statistics.median(v["read_ms"]), 1) for k, v in times.items()},
        "images": rows, "video": video,
    }
    (ROOT / "bench" / "results" / "watermark.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("psnr_db", "embed_ms_median", "read_ms_median")}, indent=2))


if __name__ == "__main__":
    main()
