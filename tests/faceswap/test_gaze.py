"""follow_gaze: the iris model finds the irises, and the swap puts the source's irises where the target's are."""

from __future__ import annotations

import cv2
import numpy as np

from drawn_props import look_aside


def along(pts: np.ndarray, eye: int, point: np.ndarray) -> float:
    """Where `point` sits along eye `eye` (0 = between the corners; -0.5 = at the image-left corner)."""
    from genstudio.faceswap.engine import eye_frame

    origin, axis, width = eye_frame(pts, eye)
    return float((point - origin) @ axis / width)


def test_irises_are_found_in_the_eyes(swapper, astronaut: np.ndarray, grace: np.ndarray) -> None:
    from genstudio.faceswap.iris import IrisFinder

    finder = IrisFinder()
    for photo in (astronaut, grace):
        pts = swapper._largest_face(photo, "photo")
        irises = finder.irises(photo, pts)
        assert all(i is not None and i.shape == (5, 2) for i in irises)
        assert all(abs(along(pts, e, i[0])) < 0.1 for e, i in enumerate(irises))  # both look at the camera
        radii = [float(np.linalg.norm(i[1:] - i[0], axis=1).mean()) for i in irises]
        widths = [float(np.linalg.norm(pts[a] - pts[b])) for a, b in ((33, 133), (362, 263))]
        assert all(0.1 < r / w < 0.4 for r, w in zip(radii, widths, strict=True))


def test_the_swap_follows_the_target_gaze(astronaut: np.ndarray) -> None:
    from genstudio.faceswap.engine import FaceSwapper, SwapOptions, swap_image
    from genstudio.faceswap.iris import IrisFinder

    big = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_CUBIC)  # irises of about 8 px
    swapper = FaceSwapper()
    swapper.set_source(astronaut)  # the same person: only the gaze differs
    pts = swapper._largest_face(big, "target")
    aside = look_aside(big, pts, -0.15)
    pts = swapper._largest_face(aside, "target")
    finder = IrisFinder()
    target = [along(pts, e, i[0]) for e, i in enumerate(finder.irises(aside, pts))]
    assert all(t < -0.07 for t in target), target

    def gaze(options: SwapOptions) -> list[float]:
        out = swap_image(swapper, aside, options)[0]
        return [along(pts, e, i[0]) for e, i in enumerate(finder.irises(out, pts))]

    plain, followed = gaze(SwapOptions()), gaze(SwapOptions(follow_gaze=True))
    for t, p, f in zip(target, plain, followed, strict=True):
        assert abs(f - t) < 0.6 * abs(p - t), (target, plain, followed)  # most of the way to the target's
