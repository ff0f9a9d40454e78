"""Glasses found from the eye region's edges (glasses.py), and a swap's `glasses`: the source's taken out,
the target's kept on top."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from drawn_props import draw_glasses


def face_points(swapper, image: np.ndarray) -> np.ndarray:  # noqa: ANN001
    return swapper._largest_face(image, "photo")


@pytest.fixture(scope="module")
def bespectacled(swapper, astronaut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    return draw_glasses(astronaut, face_points(swapper, astronaut))


def test_glasses_are_seen_on_the_bridge(swapper, grace: np.ndarray, astronaut: np.ndarray, bespectacled) -> None:
    from genstudio.faceswap.glasses import GLASSES_SCORE, glasses_score, has_glasses

    assert has_glasses(grace, face_points(swapper, grace))  # Grace Hopper wears glasses
    assert glasses_score(astronaut, face_points(swapper, astronaut)) < GLASSES_SCORE / 2
    worn, _ = bespectacled
    assert has_glasses(worn, face_points(swapper, worn))


def test_the_frame_mask_finds_the_frame_not_the_eyes(swapper, bespectacled) -> None:
    from genstudio.faceswap.glasses import frame_mask

    worn, truth = bespectacled
    mask, (x0, y0, x1, y1) = frame_mask(worn, face_points(swapper, worn))
    found = np.zeros(truth.shape, np.float32)
    found[y0:y1, x0:x1] = mask
    in_band = truth[y0:y1, x0:x1].sum() / truth.sum()
    assert in_band > 0.8
    assert (found[truth] > 0.5).mean() > 0.8  # most of the frame
    near = cv2.dilate(truth.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # the frame and its edge
    assert (found[~near] > 0.5).sum() < 0.2 * truth.sum()  # little elsewhere (eyelid creases, the hairline)


def test_the_source_glasses_come_out(swapper, grace: np.ndarray) -> None:
    from genstudio.faceswap.glasses import GLASSES_SCORE, _band_box, glasses_score, remove_glasses

    pts = face_points(swapper, grace)
    clean = remove_glasses(grace, pts)
    assert glasses_score(clean, pts) < GLASSES_SCORE <= glasses_score(grace, pts)
    x0, y0, x1, y1 = _band_box(pts, grace.shape)
    ys, xs = np.nonzero((clean != grace).any(axis=2))
    # only the band from the brows to the cheekbones is touched (the inpainted frame within it)
    assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1
    assert len(ys) < 0.35 * (x1 - x0) * (y1 - y0)


def test_swap_glasses_modes(grace: np.ndarray, astronaut: np.ndarray, bespectacled) -> None:
    from genstudio.faceswap.engine import FaceSwapper, SwapOptions, swap_image
    from genstudio.faceswap.glasses import GLASSES_SCORE, glasses_score

    swapper = FaceSwapper()
    out = {}
    for mode in ("source", "none"):  # a bare-faced target: the source's glasses come along, or do not
        swapper.set_source(grace, glasses=mode)
        assert swapper.source_glasses
        out[mode] = swap_image(swapper, astronaut, SwapOptions(glasses=mode))[0]
    pts = face_points(swapper, astronaut)
    assert glasses_score(out["source"], pts) >= GLASSES_SCORE > glasses_score(out["none"], pts)

    worn, frame = bespectacled  # a target with glasses: kept on top with "target"
    kept = {}
    for mode in ("source", "target"):
        swapper.set_source(grace, glasses=mode)
        result = swap_image(swapper, worn, SwapOptions(glasses=mode))[0]
        kept[mode] = (np.abs(result.astype(int) - worn.astype(int)).sum(axis=2) <= 30)[frame].mean()
    assert kept["target"] > 0.8 and kept["source"] < 0.5, kept
