"""Face-swap studio fixtures: test media built from public-domain photos; the real engine runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fs_media import make_clip

    return make_clip(tmp_path_factory.mktemp("clips") / "astronaut.mp4")


@pytest.fixture(scope="session")
def face_png() -> bytes:
    from fs_media import astronaut_bgr, png_bytes

    return png_bytes(astronaut_bgr(384))
