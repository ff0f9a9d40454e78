"""The landmark engine on real photos: detection, swap quality checks, face selection, smoothing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from faceswap_clips import background, place, requires_models

from genstudio.faceswap.engine import (
    FaceSwapper,
    NoFaceError,
    SwapOptions,
    face_descriptor,
    swap_image,
)
from genstudio.faceswap.landmarks import FACE_OVAL, INNER_LIPS, FaceLandmarker

pytestmark = requires_models


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    return FaceLandmarker()


def test_missing_models_name_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="fetch_face_models.py"):
        FaceSwapper(models_dir=tmp_path)


def test_detector_finds_the_face_where_it_is(landmarker: FaceLandmarker, astronaut: np.ndarray,
                                             grace: np.ndarray) -> None:
    (det,) = landmarker.detect(astronaut)
    assert det.score > 0.8
    # The astronaut's face spans about x 178-272, y 73-176 in the 512x512 photo.
    assert np.allclose(det.box, [178, 81, 272, 175], atol=12)
    # Grace Hopper's photo is 512x600: letterboxed before detection, boxes mapped back to frame pixels.
    (det,) = landmarker.detect(grace)
    assert np.allclose(det.box, [166, 143, 366, 343], atol=15)
    mesh = landmarker.landmarks_from_detection(grace, det)
    assert mesh.presence > 0.9
    x0, y0, x1, y1 = det.box
    nose = mesh.landmarks[4]
    assert x0 < nose[0] < x1 and y0 < nose[1] < y1


def test_detector_follows_a_moved_face(landmarker: FaceLandmarker, astronaut: np.ndarray) -> None:
    frame = place(background(), astronaut, 420, 260, 560)
    (det,) = landmarker.detect(frame)
    # The photo's face centre (225, 128) of 512 px, scaled by 560/512 about the photo centre, moved to (420, 260).
    expected = (np.array([225, 128]) - 256) * (560 / 512) + [420, 260]
    centre = (det.box[:2] + det.box[2:]) / 2
    assert np.linalg.norm(centre - expected) < 12


def test_small_face_found_by_the_tiled_pass(landmarker: FaceLandmarker, astronaut: np.ndarray) -> None:
    frame = place(background(), astronaut, 160, 300, 270)  # face about 50 px wide in 640x480
    assert landmarker.detect(frame, tiles=False) == []
    faces = [d for d in landmarker.detect(frame) if landmarker.landmarks_from_detection(frame, d).presence > 0.5]
    assert len(faces) == 1
    expected = (np.array([225, 128]) - 256) * (270 / 512) + [160, 300]
    assert np.linalg.norm((faces[0].box[:2] + faces[0].box[2:]) / 2 - expected) < 8


def test_no_face_in_source_is_a_clear_error(swapper: FaceSwapper) -> None:
    fresh = FaceSwapper()
    with pytest.raises(NoFaceError, match="no face found in the source photo"):
        fresh.set_source(background())


def _face_region(pts: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(pts[FACE_OVAL].astype(np.int32)), 255)
    cv2.fillPoly(mask, [pts[INNER_LIPS].astype(np.int32)], 0)
    return cv2.erode(mask, np.ones((9, 9), np.uint8)) > 0


def test_swap_changes_the_face_toward_the_source(swapper: FaceSwapper, landmarker: FaceLandmarker,
                                                 astronaut: np.ndarray, grace: np.ndarray) -> None:
    out, count = swap_image(swapper, astronaut, SwapOptions())
    assert count == 1
    target_pts = landmarker.landmarks_from_detection(astronaut, landmarker.detect(astronaut)[0]).landmarks
    region = _face_region(target_pts, astronaut.shape)
    diff = np.abs(out.astype(int) - astronaut.astype(int)).mean(axis=2)
    assert diff[region].mean() > 10          # the face changed
    assert diff[~cv2.dilate(region.astype(np.uint8), np.ones((41, 41), np.uint8)).astype(bool)].max() == 0

    source_pts = landmarker.landmarks_from_detection(grace, landmarker.detect(grace)[0]).landmarks
    source_lum = face_descriptor(grace, source_pts)[0][:-2]  # the aligned luminance crop, chroma left out
    out_pts = landmarker.landmarks_from_detection(out, landmarker.detect(out)[0]).landmarks

    def cosine(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

    before = cosine(face_descriptor(astronaut, target_pts)[0][:-2], source_lum)
    after = cosine(face_descriptor(out, out_pts)[0][:-2], source_lum)
    assert after > before + 0.15, (before, after)
    # The swapped face keeps the target's pose: landmarks of the output sit where the target's were.
    inter_ocular = np.linalg.norm(target_pts[33] - target_pts[263])
    assert np.linalg.norm(out_pts - target_pts, axis=1).mean() / inter_ocular < 0.08


def test_mouth_interior_is_the_targets_own(swapper: FaceSwapper, landmarker: FaceLandmarker,
                                          astronaut: np.ndarray) -> None:
    # The astronaut smiles with open lips and teeth; the source (Grace Hopper) has her mouth closed.
    out, _ = swap_image(swapper, astronaut, SwapOptions())
    pts = landmarker.landmarks_from_detection(astronaut, landmarker.detect(astronaut)[0]).landmarks
    mouth = np.zeros(astronaut.shape[:2], np.uint8)
    cv2.fillPoly(mouth, [np.round(pts[INNER_LIPS]).astype(np.int32)], 255)
    mouth = cv2.erode(mouth, np.ones((3, 3), np.uint8)) > 0
    assert mouth.sum() > 50
    inside = np.abs(out.astype(int) - astronaut.astype(int)).mean(axis=2)[mouth]
    assert inside.mean() < 6, inside.mean()


def test_frame_without_a_face_passes_through(swapper: FaceSwapper) -> None:
    frame = background()
    track = swapper.new_track(SwapOptions())
    for _ in range(3):
        out, count = swapper.swap_frame(frame, track)
        assert count == 0 and out is frame
    assert out.tobytes() == background().tobytes()


@pytest.fixture(scope="module")
def two_faces(astronaut: np.ndarray, grace: np.ndarray) -> np.ndarray:
    canvas = background()
    canvas[100:356, 40:296] = cv2.resize(astronaut[40:296, 100:356], (256, 256))
    canvas[100:356, 344:600] = cv2.resize(grace[20:420, 130:530], (256, 256))
    return canvas


def _changed_halves(out: np.ndarray, original: np.ndarray) -> tuple[bool, bool]:
    diff = np.abs(out.astype(int) - original.astype(int)).sum(axis=2)
    return bool(diff[:, :320].sum() > 0), bool(diff[:, 320:].sum() > 0)


def test_face_selection(two_faces: np.ndarray, astronaut: np.ndarray, grace: np.ndarray) -> None:
    swapper = FaceSwapper()
    swapper.set_source(place(background(), astronaut, 320, 240, 600, 10))
    assert _changed_halves(swap_image(swapper, two_faces, SwapOptions(target_face=0))[0], two_faces) == (True, False)
    assert _changed_halves(swap_image(swapper, two_faces, SwapOptions(target_face=1))[0], two_faces) == (False, True)
    out, count = swap_image(swapper, two_faces, SwapOptions(many_faces=True))
    assert count == 2 and _changed_halves(out, two_faces) == (True, True)
    ref_grace = place(background(), grace, 300, 250, 520, -5)
    assert _changed_halves(swap_image(swapper, two_faces, SwapOptions(reference_bgr=ref_grace))[0],
                           two_faces) == (False, True)
    assert _changed_halves(swap_image(swapper, two_faces, SwapOptions(reference_bgr=astronaut))[0],
                           two_faces) == (True, False)
    assert swap_image(swapper, two_faces, SwapOptions(target_face=5))[1] == 0


def _noisy_static(astronaut: np.ndarray, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    base = place(background(), astronaut, 320, 240, 520).astype(np.float32)
    return [np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def _jitter(swapper: FaceSwapper, frames: list[np.ndarray], smoothing: bool) -> float:
    track = swapper.new_track(SwapOptions(smoothing=smoothing))
    points = [swapper.update(frame, track)[0].smoothed for frame in frames]
    return float(np.linalg.norm(np.diff(np.array(points[5:]), axis=0), axis=2).mean())


def test_smoothing_removes_jitter_on_a_static_face(swapper: FaceSwapper, astronaut: np.ndarray) -> None:
    frames = _noisy_static(astronaut, 30)
    raw, smooth = _jitter(swapper, frames, False), _jitter(swapper, frames, True)
    assert raw > 0.05
    assert smooth < 0.5 * raw


def test_smoothing_does_not_lag_steady_motion(swapper: FaceSwapper, astronaut: np.ndarray) -> None:
    frames = [place(background(), astronaut, 200 + 4 * i, 240, 520) for i in range(40)]
    raw_track, smooth_track = swapper.new_track(SwapOptions(smoothing=False)), swapper.new_track(SwapOptions())
    gaps = []
    for frame in frames:
        raw = swapper.update(frame, raw_track)[0].raw
        smooth = swapper.update(frame, smooth_track)[0].smoothed
        gaps.append(float(np.linalg.norm(smooth - raw, axis=1).mean()))
    # 4 px per frame; an EMA with the same static jitter reduction trails by several pixels.
    assert np.mean(gaps[10:]) < 1.0


def test_face_leaving_and_returning_keeps_its_index(astronaut: np.ndarray, grace: np.ndarray) -> None:
    swapper = FaceSwapper()
    swapper.set_source(astronaut)
    track = swapper.new_track(SwapOptions(target_face=1, smoothing=False))
    swapped_x = []
    for i in range(40):
        frame = background()
        frame = place(frame, astronaut, 150, 240, 420)
        gx = 470 if i < 10 or i >= 30 else 470 + 60 * (i - 9)  # Grace walks out to the right and comes back
        frame = place(frame, grace, gx, 240, 360)
        out, count = swapper.swap_frame(frame, track)
        if count:
            diff = np.abs(out.astype(int) - frame.astype(int)).sum(axis=2)
            swapped_x.append((i, float(np.nonzero(diff)[1].mean())))
    frames_swapped = [i for i, _ in swapped_x]
    assert 0 in frames_swapped and 39 in frames_swapped
    assert all(x > 320 for _, x in swapped_x)  # never the astronaut on the left
    assert not any(15 <= i < 30 for i in frames_swapped)  # nothing swapped while she is away


def test_local_colour_transfer_follows_the_targets_light() -> None:
    """A side-lit target (light falling off left to right): the global transfer gives the source one level
    everywhere; the local one gives it the target's fall-off, within a few grey levels, and keeps its detail."""
    import cv2

    from genstudio.faceswap.engine import colour_transfer

    rng = np.random.default_rng(0)
    texture = rng.normal(0, 12, (120, 120)).astype(np.float32)
    src = np.clip(150 + texture, 0, 255).astype(np.uint8)
    src = cv2.merge([src, src, src])
    ramp = np.linspace(200, 60, 120, dtype=np.float32)[None, :].repeat(120, axis=0)
    dst = np.clip(ramp + rng.normal(0, 12, (120, 120)), 0, 255).astype(np.uint8)
    dst = cv2.merge([dst, dst, dst])
    mask = np.zeros((120, 120), np.uint8)
    mask[10:110, 10:110] = 255

    def columns(img: np.ndarray) -> np.ndarray:
        return img[20:100, :, 0].astype(np.float32).mean(axis=0)

    flat = colour_transfer(src, dst, mask)
    local = colour_transfer(src, dst, mask, local=12.0)
    target = columns(dst)
    assert np.abs(columns(flat)[20:100] - target[20:100]).mean() > 20  # one level: far off at both sides
    assert np.abs(columns(local)[20:100] - target[20:100]).mean() < 6  # the fall-off followed
    # The source's own detail is kept (its texture, not the target's).
    detail = local[20:100, 20:100, 0].astype(np.float32) - cv2.GaussianBlur(local, (0, 0), 6)[20:100, 20:100, 0]
    src_detail = texture[20:100, 20:100] - cv2.GaussianBlur(texture, (0, 0), 6)[20:100, 20:100]
    assert np.corrcoef(detail.ravel(), src_detail.ravel())[0, 1] > 0.8


def test_small_face_search_interval_grows_with_the_frame() -> None:
    """The small-face pyramid costs in proportion to the frame's area: larger videos search less often, so
    it stays about the same share of each frame's time (first frame always searched)."""
    from genstudio.faceswap.engine import SMALL_FACE_EVERY, SMALL_FACE_EVERY_MAX, small_face_every

    assert small_face_every((480, 640, 3)) == SMALL_FACE_EVERY == 30
    assert small_face_every((240, 320, 3)) == SMALL_FACE_EVERY
    assert small_face_every((720, 1280, 3)) == 90
    assert small_face_every((1080, 1920, 3)) == SMALL_FACE_EVERY_MAX == 150


def test_colour_memory_blends_a_face_statistics_over_frames() -> None:
    """In a video the colour transfer keeps COLOUR_MEMORY of the previous frame's statistics, so a sudden change
    of the target's tone moves the face's part of the way at once (no flicker from resampling noise); without
    a memory (stills) the face takes the target's tone at once."""
    from genstudio.faceswap.engine import COLOUR_MEMORY, colour_transfer

    rng = np.random.default_rng(0)
    src = rng.integers(90, 110, (64, 64, 3), dtype=np.uint8)
    dark = np.full((64, 64, 3), 60, np.uint8) + rng.integers(0, 10, (64, 64, 3), dtype=np.uint8)
    light = dark + 80
    mask = np.full((64, 64), 255, np.uint8)
    memory: dict = {}
    first = colour_transfer(src, dark, mask, local=6.0, memory=memory).astype(float).mean()
    second = colour_transfer(src, light, mask, local=6.0, memory=memory).astype(float).mean()
    at_once = colour_transfer(src, light, mask, local=6.0).astype(float).mean()
    assert abs(first - dark.mean()) < 3 and abs(at_once - light.mean()) < 3
    assert 0 < COLOUR_MEMORY < 1
    moved = (second - first) / (at_once - first)  # share of the way to the new tone taken in one frame
    assert 0.1 < moved < 0.6, (first, second, at_once)


def test_multiband_blend_keeps_the_inside_and_the_far_outside() -> None:
    """blend_multiband: the face inside the mask, the target well outside it, a smooth ramp between; nothing
    from outside the face's mask bleeds in (the face image there is replaced by the target's)."""
    import cv2

    from genstudio.faceswap.engine import blend_into, blend_multiband

    target = np.full((96, 96, 3), 100, np.uint8)
    face = np.full((96, 96, 3), 160, np.uint8)
    face[:, :8] = 0  # garbage where the mask is 0: must not leak
    mask = np.zeros((96, 96), np.uint8)
    cv2.circle(mask, (48, 48), 24, 255, -1)
    alpha = cv2.GaussianBlur(mask, (0, 0), 2).astype(np.float32) / 255.0
    multi, feather = target.copy(), target.copy()
    blend_multiband(multi, face, alpha, 0, 0)
    blend_into(feather, face, alpha, 0, 0)
    assert abs(int(multi[48, 48, 0]) - 160) <= 3 and abs(int(multi[2, 2, 0]) - 100) <= 3
    assert (multi[:, :6] == 100).all()  # the garbage column stayed out
    row = multi[48, :, 0].astype(int)
    assert (np.diff(row[24:48]) >= -1).all()  # rising smoothly into the face
    assert np.abs(np.diff(row)).max() < np.abs(np.diff(feather[48, :, 0].astype(int))).max()  # a gentler step
