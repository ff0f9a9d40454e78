"""What the target keeps, and what it costs: the built-in hand mask (hands.py) and glasses handling
(glasses.py), side by side with the plain swap in one run.

1. Quality, on the public-domain astronaut photo (target) and Grace Hopper's (source, who wears glasses), with
   props drawn by tests/drawn_props.py (no photo of a hand ships with any package we may use):
   - hand: share of the drawn hand's pixels over the face the swap changes, without and with `hand_mask`;
   - target's glasses: share of the drawn frame's pixels kept, glasses "source" against "target";
   - source's glasses: the glasses score (black-hat across the nose bridge) of the result on a bare-faced
     target, glasses "source" against "none" (under glasses.GLASSES_SCORE = no glasses seen).
2. Cost: median ms per frame of FaceSwapper.swap_frame (a video track: detection, tracking, render, masks) at
   640x480 and 1280x720, interleaved: plain; hand_mask with no hand in view; hand_mask with a hand over the
   face; glasses "target" on a target with glasses; the multi-band seam; follow_gaze; and the one-off cost of
   taking the source's glasses out.
4. Gaze: see gaze() below.
3. A picture: docs/images/faceswap-hands-glasses.png.

    .venv/bin/python bench/run_faceswap_masks_bench.py [--frames 40] [--out bench/results/faceswap-masks.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from run_faceswap_bench import astronaut, background, grace_hopper  # noqa: E402

from drawn_props import draw_glasses, hand_over_face, look_aside  # noqa: E402
from genstudio.faceswap.engine import FaceSwapper, SwapOptions, eye_frame, swap_image  # noqa: E402
from genstudio.faceswap.glasses import GLASSES_SCORE, glasses_score, remove_glasses  # noqa: E402
from genstudio.faceswap.iris import IrisFinder  # noqa: E402


def changed(out: np.ndarray, before: np.ndarray) -> np.ndarray:
    return np.abs(out.astype(int) - before.astype(int)).sum(axis=2) > 24


def quality(swapper: FaceSwapper, grace: np.ndarray, target: np.ndarray) -> tuple[dict, dict[str, np.ndarray]]:
    pts = swapper._largest_face(target, "target")
    with_hand, hand = hand_over_face(target, (*pts.min(0), *pts.max(0)))
    worn, frame = draw_glasses(target, pts)
    pics = {"hand target": with_hand, "glasses target": worn, "bare target": target}
    swapper.set_source(grace)
    pics["hand: plain"] = swap_image(swapper, with_hand, SwapOptions())[0]
    pics["hand: hand_mask"] = swap_image(swapper, with_hand, SwapOptions(hand_mask=True))[0]
    pics["glasses: source"] = swap_image(swapper, worn, SwapOptions())[0]
    pics["bare: glasses source"] = swap_image(swapper, target, SwapOptions())[0]
    swapper.set_source(grace, glasses="target")
    pics["glasses: target"] = swap_image(swapper, worn, SwapOptions(glasses="target"))[0]
    swapper.set_source(grace, glasses="none")
    pics["bare: glasses none"] = swap_image(swapper, target, SwapOptions(glasses="none"))[0]
    result = {
        "hand pixels changed, plain": round(float(changed(pics["hand: plain"], with_hand)[hand].mean()), 3),
        "hand pixels changed, hand_mask": round(float(changed(pics["hand: hand_mask"], with_hand)[hand].mean()), 3),
        "target's frame kept, glasses=source": round(float((~changed(pics["glasses: source"], worn))[frame].mean()), 3),
        "target's frame kept, glasses=target": round(float((~changed(pics["glasses: target"], worn))[frame].mean()), 3),
        "glasses score of the result, glasses=source": round(glasses_score(pics["bare: glasses source"], pts), 1),
        "glasses score of the result, glasses=none": round(glasses_score(pics["bare: glasses none"], pts), 1),
        "glasses score of the source photo": round(glasses_score(grace, swapper._largest_face(grace, "source")), 1),
        "glasses threshold (GLASSES_SCORE)": GLASSES_SCORE,
    }
    return result, pics


def gaze(target: np.ndarray) -> dict:
    """follow_gaze: the astronaut (at 1024 px, irises of about 8 px) looking aside (tests/drawn_props.look_aside,
    irises moved 0.15 eye-widths to the image-left), swapped with her own photo (only the gaze differs): where
    the output's irises sit along each eye (0 = centred, in eye widths; the iris model on the output), against
    the target's."""
    swapper, finder = FaceSwapper(), IrisFinder()
    swapper.set_source(target)
    big = cv2.resize(target, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    aside = look_aside(big, swapper._largest_face(big, "target"), -0.15)
    pts = swapper._largest_face(aside, "target")

    def along(image: np.ndarray) -> list[float]:
        found = finder.irises(image, pts)
        return [round(float((i[0] - eye_frame(pts, e)[0]) @ eye_frame(pts, e)[1] / eye_frame(pts, e)[2]), 3)
                for e, i in enumerate(found)]

    return {"target (looking aside)": along(aside), "swap": along(swap_image(swapper, aside, SwapOptions())[0]),
            "swap + follow_gaze": along(swap_image(swapper, aside, SwapOptions(follow_gaze=True))[0])}


def frame_at(width: int, height: int, photo: np.ndarray) -> np.ndarray:
    """The photo scaled so the face is about a third of the frame's height, on the bench background."""
    bg = cv2.resize(background(), (width, height))
    side = int(height * 0.8)
    small = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
    x0, y0 = (width - side) // 2, height - side
    bg[y0:, x0:x0 + side] = small
    return bg


def cost(swapper: FaceSwapper, grace: np.ndarray, frames: int) -> dict:
    photo = astronaut()
    engines = {"source": swapper, "target": FaceSwapper()}  # one per source: as photographed, glasses out
    for glasses, engine in engines.items():
        engine.set_source(grace, glasses=glasses)
    out = {}
    for width, height in ((640, 480), (1280, 720)):
        bare = frame_at(width, height, photo)
        pts = swapper._largest_face(bare, "target")
        hand_frame, _ = hand_over_face(bare, (*pts.min(0), *pts.max(0)))
        worn, _ = draw_glasses(bare, pts)
        cases = {
            "plain": (bare, SwapOptions(), "source"),
            "hand_mask, no hand in view": (bare, SwapOptions(hand_mask=True), "source"),
            "hand_mask, a hand over the face": (hand_frame, SwapOptions(hand_mask=True), "source"),
            "glasses=target, target wears glasses": (worn, SwapOptions(glasses="target"), "target"),
            "blend=multiband": (bare, SwapOptions(blend="multiband"), "source"),
            "follow_gaze": (bare, SwapOptions(follow_gaze=True), "source"),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        tracks = {name: engines[glasses].new_track(options) for name, (_, options, glasses) in cases.items()}
        for i in range(frames):
            for name, (image, _, glasses) in cases.items():  # interleaved: the machine's drift hits every case
                start = time.perf_counter()
                engines[glasses].swap_frame(image, tracks[name])
                if i >= 3:  # the first frames search for small faces
                    times[name].append((time.perf_counter() - start) * 1000)
        plain = statistics.median(times["plain"])
        out[f"{width}x{height}"] = {name: {"ms_per_frame": round(statistics.median(t), 2),
                                           "ratio_to_plain": round(statistics.median(t) / plain, 2)}
                                    for name, t in times.items()}
    pts = swapper._largest_face(grace, "source")
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        remove_glasses(grace, pts)
        runs.append((time.perf_counter() - start) * 1000)
    out["taking the source's glasses out (once per swap), ms"] = round(statistics.median(runs), 2)
    return out


def picture(pics: dict[str, np.ndarray], path: Path) -> None:
    rows = [("hand target", "hand: plain", "hand: hand_mask"),
            ("glasses target", "glasses: source", "glasses: target"),
            ("bare target", "bare: glasses source", "bare: glasses none")]
    captions = {"hand target": "target (drawn hand)", "hand: plain": "swap", "hand: hand_mask": "swap + hand_mask",
                "glasses target": "target (drawn glasses)", "glasses: source": "glasses: source",
                "glasses: target": "glasses: target", "bare target": "target", "bare: glasses source":
                "glasses: source", "bare: glasses none": "glasses: none"}
    tiles = []
    for row in rows:
        cells = []
        for key in row:
            tile = cv2.resize(pics[key][20:300, 110:390], (280, 280))
            cv2.putText(tile, captions[key], (8, 272), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 2)
            cells.append(tile)
        tiles.append(np.hstack(cells))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack(tiles))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "faceswap-masks.json")
    parser.add_argument("--picture", type=Path, default=ROOT / "docs" / "images" / "faceswap-hands-glasses.png")
    args = parser.parse_args()
    swapper = FaceSwapper()
    grace = grace_hopper()
    found, pics = quality(swapper, grace, astronaut())
    picture(pics, args.picture)
    result = {"quality": found, "gaze (iris along the eye, image-left and image-right eye)": gaze(astronaut()),
              "cost": cost(swapper, grace, args.frames), "frames": args.frames}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
