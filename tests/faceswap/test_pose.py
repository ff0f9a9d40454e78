"""A turned source face: the mesh's mirror map, the turn read from the landmarks, and the far half drawn from
the near half mirrored instead of the squeezed far half stretched."""

from __future__ import annotations

import numpy as np
import pytest

from drawn_props import face_halves, turned_face


def test_the_mesh_mirror_map() -> None:
    from genstudio.faceswap.engine import MESH_MIRROR, MESH_SIDE

    assert (MESH_MIRROR[MESH_MIRROR] == np.arange(468)).all()  # its own inverse
    assert (MESH_MIRROR == np.arange(468)).sum() == 28 == (MESH_SIDE == 0).sum()
    for a, b in ((33, 263), (133, 362), (61, 291), (234, 454), (127, 356), (159, 386)):  # eyes, mouth, cheeks
        assert MESH_MIRROR[a] == b
    assert (MESH_SIDE[MESH_MIRROR] == -MESH_SIDE).all() and (MESH_SIDE[[33, 234]] == -1).all()


def test_turn_is_read_from_the_landmarks(swapper, grace: np.ndarray, astronaut: np.ndarray) -> None:
    from genstudio.faceswap.engine import TURN_MIRROR, face_turn

    for photo in (grace, astronaut):
        assert abs(face_turn(swapper._largest_face(photo, "photo"))) < 0.1
    turned = turned_face(grace, swapper._largest_face(grace, "photo"))
    assert face_turn(swapper._largest_face(turned, "photo")) < -TURN_MIRROR  # the image-right half is the far one


def test_a_turned_source_far_half_is_drawn_from_the_near_half(grace: np.ndarray, astronaut: np.ndarray,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from genstudio.faceswap import engine
    from genstudio.faceswap.engine import FaceSwapper, SwapOptions, swap_image

    swapper = FaceSwapper()
    swapper.set_source(grace)
    assert swapper.source.src_triangles is None  # frontal: nothing mirrored
    ideal = swap_image(swapper, astronaut, SwapOptions())[0]  # what a frontal photo of her gives
    turned = turned_face(grace, swapper._largest_face(grace, "photo"))
    swapper.set_source(turned)
    assert swapper.source.src_triangles is not None
    mirrored = swap_image(swapper, astronaut, SwapOptions())[0]
    monkeypatch.setattr(engine, "TURN_MIRROR", 10.0)
    swapper.set_source(turned)
    stretched = swap_image(swapper, astronaut, SwapOptions())[0]

    far = face_halves(astronaut.shape, swapper._largest_face(astronaut, "target"))["far"]

    def off(out: np.ndarray) -> float:
        return float(np.abs(out.astype(int) - ideal.astype(int)).mean(axis=2)[far].mean())

    assert off(mirrored) < 0.85 * off(stretched), (off(mirrored), off(stretched))
