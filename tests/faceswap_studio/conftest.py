"""Face-swap studio fixtures: the real engine when it is importable, else a stand-in of the same interface."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fake_engine  # noqa: E402

FAKE = fake_engine.install()


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fs_media import make_clip

    return make_clip(tmp_path_factory.mktemp("clips") / "astronaut.mp4")


@pytest.fixture(scope="session")
def face_png() -> bytes:
    from fs_media import astronaut_bgr, png_bytes

    return png_bytes(astronaut_bgr(384))
