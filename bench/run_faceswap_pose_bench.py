"""A turned source photo: its far half drawn from the near half mirrored (engine.source_far_side, now) against
the squeezed far half stretched back over a frontal target (before), side by side in one run.

No public-domain three-quarter photo ships with a package this project may use, so the source is Grace
Hopper's photo (public domain) with the face's image-right half squeezed towards the midline
(tests/drawn_props.turned_face), as a turned face shows its far half; squeezes of 0.8 (slightly turned) to 0.35
(well turned). The target is the frontal astronaut photo. Measured on the output's far half of the face
(image-right of the midline, inside the face oval): mean absolute difference, in grey levels, from the swap
of the unsqueezed photo (what a frontal photo of the same person gives); the near half's for reference.

    .venv/bin/python bench/run_faceswap_pose_bench.py [--out bench/results/faceswap-pose.json]
        [--picture docs/images/faceswap-pose.png]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from run_faceswap_bench import astronaut, grace_hopper  # noqa: E402

from drawn_props import face_halves, turned_face  # noqa: E402
from genstudio.faceswap import engine  # noqa: E402
from genstudio.faceswap.engine import FaceSwapper, SwapOptions, face_turn, swap_image  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "faceswap-pose.json")
    parser.add_argument("--picture", type=Path, default=ROOT / "docs" / "images" / "faceswap-pose.png")
    args = parser.parse_args()
    grace, target = grace_hopper(), astronaut()
    swapper = FaceSwapper()
    swapper.set_source(grace)
    ideal = swap_image(swapper, target, SwapOptions())[0]
    halves = face_halves(target.shape, swapper._largest_face(target, "target"))
    grace_pts = swapper._largest_face(grace, "source")
    rows, tiles = {}, []
    saved = engine.TURN_MIRROR
    for squeeze in (0.8, 0.6, 0.45, 0.35):
        source = turned_face(grace, grace_pts, squeeze)
        turn = face_turn(swapper._largest_face(source, "source"))
        row = {"turn": round(turn, 3)}
        outs = {}
        for name, threshold in (("stretched (before)", 10.0), ("near half mirrored (now)", saved)):
            engine.TURN_MIRROR = threshold
            try:
                swapper.set_source(source)
                outs[name] = swap_image(swapper, target, SwapOptions())[0]
            finally:
                engine.TURN_MIRROR = saved
            diff = np.abs(outs[name].astype(int) - ideal.astype(int)).mean(axis=2)
            row[name] = {half: round(float(diff[m].mean()), 2) for half, m in halves.items()}
        row["mirrored at this turn"] = abs(turn) > saved
        rows[f"squeeze {squeeze}"] = row
        print(squeeze, json.dumps(row), flush=True)
        if squeeze == 0.45:
            tiles = [cv2.resize(source[40:440, 60:460], (280, 280)), ideal[20:300, 110:390],
                     outs["stretched (before)"][20:300, 110:390], outs["near half mirrored (now)"][20:300, 110:390]]
    args.out.write_text(json.dumps({"turn_mirror": saved, "rows": rows}, indent=1) + "\n")
    captions = ("turned source (squeezed)", "frontal source", "turned: stretched", "turned: mirrored")
    for tile, text in zip(tiles, captions, strict=True):
        cv2.putText(tile, text, (8, 272), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 2)
    cv2.imwrite(str(args.picture), np.hstack(tiles))


if __name__ == "__main__":
    main()
