"""Hands in front of a face (hands.py): MediaPipe's palm detector + hand landmarks find a hand, and a swap with
`hand_mask` keeps the target's hand where it covers the face."""

from __future__ import annotations

import numpy as np
import pytest

from drawn_props import draw_hand, hand_over_face


@pytest.fixture(scope="module")
def finder():  # noqa: ANN201
    from genstudio.faceswap.hands import HandFinder

    return HandFinder()


@pytest.mark.parametrize("angle", [0, 35, -60, 90])
def test_a_hand_is_found_at_any_angle(finder, angle: float) -> None:
    from genstudio.faceswap.hands import hand_mask

    image, truth = draw_hand(400, angle)
    hands = finder.find(image)
    assert len(hands) == 1, angle
    pts = hands[0].landmarks
    inside = truth[np.clip(pts[:, 1].round().astype(int), 0, 399), np.clip(pts[:, 0].round().astype(int), 0, 399)]
    assert inside.mean() >= 0.85, inside  # the landmarks lie on the drawn hand
    drawn = hand_mask(pts, truth.shape) > 0
    assert (drawn & truth).sum() / truth.sum() >= 0.6  # the mask covers most of it (not the whole forearm)
    assert (drawn & ~truth).sum() / drawn.sum() <= 0.25  # and not much beside it


def test_no_hand_on_a_face_or_a_plain_picture(finder, astronaut: np.ndarray) -> None:
    assert finder.find(astronaut) == []
    assert finder.find(np.full((300, 300, 3), 128, np.uint8)) == []


def test_swap_keeps_the_hand_in_front_of_the_face(swapper, astronaut: np.ndarray) -> None:
    from genstudio.faceswap.engine import SwapOptions, swap_image

    pts = swapper._largest_face(astronaut, "target")
    target, hand = hand_over_face(astronaut, (*pts.min(0), *pts.max(0)))
    plain, n = swap_image(swapper, target, SwapOptions())
    kept, n_kept = swap_image(swapper, target, SwapOptions(hand_mask=True))
    assert n == n_kept == 1

    def changed(out: np.ndarray) -> np.ndarray:
        return np.abs(out.astype(int) - target.astype(int)).sum(axis=2) > 6

    assert changed(plain)[hand].mean() > 0.25  # without the mask the swap paints over the fingers
    assert changed(kept)[hand].mean() < 0.08
    face_rest = changed(plain) & ~hand
    assert (changed(kept) & face_rest).sum() >= 0.9 * face_rest.sum()  # the rest of the face is still swapped
    # no hand: the option changes nothing
    same, _ = swap_image(swapper, astronaut, SwapOptions(hand_mask=True))
    assert np.array_equal(same, swap_image(swapper, astronaut, SwapOptions())[0])
