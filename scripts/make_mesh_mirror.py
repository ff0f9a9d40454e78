"""Write src/genstudio/faceswap/mesh_mirror.json: for each of the face mesh's 468 points, the point that mirrors it
across the face's midline (a permutation, its own inverse; the 28 midline points map to themselves), and which
side of the face each point is on (-1 image-left of a frontal face, +1 image-right, 0 the midline).

Found from the mesh model itself, not from a hand-made table: the landmarks of a face and of its mirror image
(flipped back) label the same places with mirrored indices, so matching the two point sets (one assignment
over the summed distances of both public-domain test photos at three sizes, made symmetric) gives the map.
Needs the face models (make install) and the test photos' packages (scikit-image, matplotlib).

    .venv/bin/python scripts/make_mesh_mirror.py
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from genstudio.faceswap.landmarks import FaceLandmarker

OUT = Path(__file__).resolve().parents[1] / "src" / "genstudio" / "faceswap" / "mesh_mirror.json"


def photos() -> list[np.ndarray]:
    from matplotlib import cbook
    from skimage.data import astronaut

    grace = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return [cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR), grace]


def main() -> None:
    landmarker = FaceLandmarker()

    def points(image: np.ndarray) -> np.ndarray:
        return landmarker.landmarks_from_detection(image, landmarker.detect(image)[0]).landmarks

    cost = np.zeros((468, 468))
    sides = []
    for base in photos():
        for scale in (0.8, 1.0, 1.3):
            image = cv2.resize(base, None, fx=scale, fy=scale)
            pts = points(image)
            flipped = points(cv2.flip(image, 1))
            flipped[:, 0] = image.shape[1] - 1 - flipped[:, 0]
            cost += np.linalg.norm(flipped[:, None, :] - pts[None, :, :], axis=2) / np.ptp(pts, axis=0).max()
            sides.append(pts)
    rows, cols = linear_sum_assignment(cost + cost.T)
    mirror = np.empty(468, int)
    mirror[rows] = cols
    assert (mirror[mirror] == np.arange(468)).all(), "not an involution"
    midline = np.flatnonzero(mirror == np.arange(468))
    side = np.zeros(468, int)
    for pts in sides:  # signed distance from the midline points' line, in the eyes' frame
        axis = pts[263] - pts[33]
        axis /= np.linalg.norm(axis)
        side += np.sign(((pts - pts[midline].mean(0)) @ axis).round(6)).astype(int)
    side = np.sign(side)
    side[midline] = 0
    assert (side[mirror] == -side).all(), "sides do not mirror"
    OUT.write_text(json.dumps({"mirror": mirror.tolist(), "side": side.tolist(),
                               "made_by": "scripts/make_mesh_mirror.py"}) + "\n")
    print(f"wrote {OUT}: {len(midline)} midline points, {int((side < 0).sum())} per side")


if __name__ == "__main__":
    main()
