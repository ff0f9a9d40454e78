"""The face-swap engine's per-frame pieces against the versions they replaced, side by side in one run, on
the landmarks of a real photo (the public-domain astronaut, mesh found by the engine) at 640x480 and 1080p:

1. `warp_maps`: now (triangle ids filled with positional arguments from one index, affines in closed form)
   against before (`fillConvexPoly` with keyword arguments and per-triangle indexing, affines through
   `np.linalg.det` / `np.linalg.inv`); the largest difference between their maps, in source pixels.
2. The face mask's erosion and feather: now (the oval's hull pulled in towards its centre and drawn
   anti-aliased, then `engine.soft_edge`: a stack blur, the same cost at any width) against before (the hull
   drawn, `cv2.erode` by a whole number of pixels, `cv2.GaussianBlur`); the largest difference in the blend
   weight (0..1).

Medians of interleaved repeats. Results: bench/results/faceswap-pieces.json.

    .venv/bin/python bench/run_faceswap_pieces_bench.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run_faceswap_bench import astronaut, grace_hopper  # noqa: E402

from genstudio.faceswap import engine  # noqa: E402
from genstudio.faceswap.engine import FACE_OVAL, FaceSwapper  # noqa: E402


def warp_maps_before(dst_pts, src_pts, triangles, x0, y0, w, h, src_triangles=None):
    """engine.warp_maps as it was before this bench (same grid, same global fallback)."""
    gw, gh = min(w, engine._MAP_GRID), min(h, engine._MAP_GRID)
    sx, sy = gw / w, gh / h
    grid_pts = np.stack([(dst_pts[:, 0] - x0 + 0.5) * sx - 0.5, (dst_pts[:, 1] - y0 + 0.5) * sy - 0.5], axis=1)
    ids = np.full((gh, gw), len(triangles), np.int32)
    fixed = np.round(grid_pts * 16).astype(np.int32)
    for t, tri in enumerate(triangles):
        cv2.fillConvexPoly(ids, fixed[tri], t, lineType=cv2.LINE_8, shift=4)
    box_pts = dst_pts - np.array([x0, y0], np.float32)
    d = np.concatenate([box_pts[triangles].transpose(0, 2, 1), np.ones((len(triangles), 1, 3), np.float32)], axis=1)
    s = src_pts[triangles if src_triangles is None else src_triangles].transpose(0, 2, 1)
    good = np.abs(np.linalg.det(d.astype(np.float64))) > 1e-3
    affines = np.empty((len(triangles) + 1, 2, 3), np.float32)
    global_affine, _ = cv2.estimateAffine2D(box_pts, src_pts, method=cv2.LMEDS)
    affines[:] = global_affine if global_affine is not None else np.eye(2, 3, dtype=np.float32)
    affines[:-1][good] = s[good] @ np.linalg.inv(d[good])
    return engine.maps_on_grid(affines, ids, w, h)  # the sampling did not change


def feather_now(hull: np.ndarray, shape: tuple[int, int], size: float) -> np.ndarray:
    outer = engine.face_outline(hull, size * 0.05, shape)
    return engine.soft_edge(outer, max(1.0, size * 0.035)).astype(np.float32) / 255.0


def feather_before(hull: np.ndarray, shape: tuple[int, int], size: float) -> np.ndarray:
    outer = np.zeros(shape, np.uint8)
    engine._poly(outer, hull, 255)
    erode = max(1, int(size * 0.05))
    eroded = cv2.erode(outer, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode + 1, 2 * erode + 1)))
    return cv2.GaussianBlur(eroded, (0, 0), max(1.0, size * 0.035)).astype(np.float32) / 255.0


def timed(fn, *args, n: int = 50) -> float:
    fn(*args)
    t = time.perf_counter()
    for _ in range(n):
        fn(*args)
    return (time.perf_counter() - t) / n * 1000


def engine_pieces(repeats: int) -> dict:
    swapper = FaceSwapper()
    swapper.set_source(grace_hopper())
    src = swapper.source
    out = {}
    for name, (w, h) in (("640x480", (640, 480)), ("1920x1080", (1920, 1080))):
        frame = cv2.resize(astronaut(), (w, h))
        det = swapper.landmarker.detect(frame)[0]
        pts = swapper.landmarker.landmarks_from_detection(frame, det).landmarks
        x0, y0, bw, bh = engine.face_box(pts, frame.shape)
        scale = min(1.0, engine.WORK_SIDE / max(bw, bh))
        ws, hs = max(4, round(bw * scale)), max(4, round(bh * scale))
        local = (pts - np.array([x0, y0], np.float32)) * np.array([ws / bw, hs / bh], np.float32)
        args = (local, src.pts, src.triangles, 0, 0, ws, hs, src.src_triangles)
        hull = cv2.convexHull(local[FACE_OVAL]).reshape(-1, 2)
        size = float(np.ptp(local[FACE_OVAL], axis=0).max())
        runs: dict[str, list[float]] = {k: [] for k in ("warp now", "warp before", "feather now", "feather before")}
        for _ in range(repeats):
            runs["warp now"].append(timed(engine.warp_maps, *args))
            runs["warp before"].append(timed(warp_maps_before, *args))
            runs["feather now"].append(timed(feather_now, hull, (hs, ws), size))
            runs["feather before"].append(timed(feather_before, hull, (hs, ws), size))
        med = {k: round(statistics.median(v), 3) for k, v in runs.items()}
        now_maps, before_maps = engine.warp_maps(*args), warp_maps_before(*args)
        out[name] = {"working size": [ws, hs], "ms": med,
                     "speedup warp": round(med["warp before"] / med["warp now"], 2),
                     "speedup feather": round(med["feather before"] / med["feather now"], 2),
                     "max map difference px": round(float(max(np.abs(a - b).max() for a, b in
                                                              zip(now_maps, before_maps, strict=True))), 4),
                     "max weight difference": round(float(np.abs(feather_now(hull, (hs, ws), size)
                                                                 - feather_before(hull, (hs, ws), size)).max()), 4)}
        print(name, json.dumps(out[name]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "faceswap-pieces.json"))
    args = ap.parse_args()
    result = {"machine": {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()}}
    result["engine"] = engine_pieces(args.repeats)
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
