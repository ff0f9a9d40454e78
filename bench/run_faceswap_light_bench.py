"""Face swap under uneven light: the colour transfer matched globally with its contrast gain held at 0.5 or
more (before) against global + local with a gain floor of 0.25 (now: engine.LOCAL_COLOUR, engine.CONTRAST_FLOOR),
side by side in one run, on targets lit the ways that showed a seam: light falling off
across the face (a side light), a dark clip, and the photo as it is.

Source: Grace Hopper (public domain, even light). Target: the astronaut photo (public domain), relit:
- "as shot": unchanged;
- "side light": brightness falling linearly from 100% on the image-left to 40% on the right (the far cheek dark);
- "dark clip": 35% brightness with a gamma of 1.4 (an underexposed video frame).
Measured inside the target's face mask (the engine's own core mask, from the target's mesh), on LAB lightness:
- light error: mean |G(out) - G(target)| with G a Gaussian of a tenth of the face (the low-frequency light the
  swap should keep), in grey levels;
- contrast ratio: std of the output's lightness / std of the target's (1 = the target's contrast);
- seam: mean gradient magnitude along the mask's edge, output / target (1 = no line added at the seam);
- the multi-band seam (`blend="multiband"`) as a third column, and each swap's time (one still, 512 px).

    .venv/bin/python bench/run_faceswap_light_bench.py [--out bench/results/faceswap-light.json]
        [--picture docs/images/faceswap-light.png]   # rows: as shot, side light, dark clip; left before, right now
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run_faceswap_bench import astronaut, grace_hopper  # noqa: E402

from genstudio.faceswap import engine  # noqa: E402
from genstudio.faceswap.engine import FaceSwapper, SwapOptions, face_box, face_mask, swap_image  # noqa: E402


def relit(bgr: np.ndarray, how: str) -> np.ndarray:
    x = bgr.astype(np.float32)
    if how == "side light":
        ramp = np.linspace(1.0, 0.4, bgr.shape[1], dtype=np.float32)[None, :, None]
        x = x * ramp
    elif how == "dark clip":
        x = 255.0 * (0.35 * x / 255.0) ** 1.4
    return np.clip(x, 0, 255).astype(np.uint8)


def measures(out: np.ndarray, target: np.ndarray, pts: np.ndarray) -> dict[str, float]:
    x0, y0, w, h = face_box(pts, target.shape)
    _alpha, core = face_mask(pts, x0, y0, w, h, (0.0, 0.0))
    size = float(np.ptp(pts, axis=0).max())
    lo = cv2.cvtColor(out[y0:y0 + h, x0:x0 + w], cv2.COLOR_BGR2LAB)[:, :, 0].astype(np.float32)
    lt = cv2.cvtColor(target[y0:y0 + h, x0:x0 + w], cv2.COLOR_BGR2LAB)[:, :, 0].astype(np.float32)
    inside = core > 0
    sigma = 0.1 * size
    light = float(np.abs(cv2.GaussianBlur(lo, (0, 0), sigma) - cv2.GaussianBlur(lt, (0, 0), sigma))[inside].mean())
    contrast = float(lo[inside].std() / max(lt[inside].std(), 1e-6))
    # The blend's edge: a ring around the outer mask's border.
    outer = cv2.dilate(core, np.ones((3, 3), np.uint8), iterations=max(2, int(size * 0.04)))
    ring = cv2.morphologyEx(outer, cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8)) > 0

    def grad(y: np.ndarray) -> np.ndarray:
        return np.hypot(cv2.Sobel(y, cv2.CV_32F, 1, 0), cv2.Sobel(y, cv2.CV_32F, 0, 1))

    seam = float(grad(lo)[ring].mean() / max(grad(lt)[ring].mean(), 1e-6))
    return {"light_error": round(light, 2), "contrast_ratio": round(contrast, 3), "seam_ratio": round(seam, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "faceswap-light.json"))
    ap.add_argument("--picture", default=str(ROOT / "docs" / "images" / "faceswap-light.png"))
    args = ap.parse_args()
    swapper = FaceSwapper()
    swapper.set_source(grace_hopper())
    base = astronaut()
    result: dict = {"local_colour": engine.LOCAL_COLOUR, "contrast_floor": engine.CONTRAST_FLOOR, "targets": {}}
    crops: dict[str, list[np.ndarray]] = {}
    saved, floor = engine.LOCAL_COLOUR, engine.CONTRAST_FLOOR
    try:
        for how in ("as shot", "side light", "dark clip"):
            target = relit(base, how)
            pts = swapper._largest_face(target, "target")
            row = {}
            for name, local, gain_floor, blend in (
                    ("global + local (now)", saved, floor, "feather"),
                    ("global only, contrast gain >= 0.5 (before)", 0.0, 0.5, "feather"),
                    ("global + local, multi-band seam (blend=multiband)", saved, floor, "multiband")):
                engine.LOCAL_COLOUR, engine.CONTRAST_FLOOR = local, gain_floor
                started = time.perf_counter()
                out, n = swap_image(swapper, target, SwapOptions(blend=blend))
                seconds = time.perf_counter() - started
                assert n == 1
                row[name] = {**measures(out, target, pts), "ms": round(1000 * seconds, 1)}
                if blend == "feather":
                    x0, y0, w, h = face_box(pts, target.shape, margin=0.3)
                    crops.setdefault(how, []).append(cv2.resize(out[y0:y0 + h, x0:x0 + w], (240, 240)))
            result["targets"][how] = row
            print(how, json.dumps(row), flush=True)
    finally:
        engine.LOCAL_COLOUR, engine.CONTRAST_FLOOR = saved, floor
    Path(args.out).write_text(json.dumps(result, indent=1))
    # The picture for docs/faceswap.md: a row per lighting, before (left) and now (right).
    rows = [np.hstack(crops[how][::-1]) for how in crops]
    cv2.imwrite(args.picture, np.vstack(rows))


if __name__ == "__main__":
    main()
