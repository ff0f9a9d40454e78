"""Shared fixtures: public-domain faces from installed packages and clips built from them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest
from faceswap_clips import astronaut_bgr, grace_hopper_bgr, write_clip


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return astronaut_bgr()


@pytest.fixture(scope="session")
def grace() -> np.ndarray:
    return grace_hopper_bgr()


@pytest.fixture(scope="session")
def swapper(grace: np.ndarray):
    from genstudio.faceswap.engine import FaceSwapper

    s = FaceSwapper()
    s.set_source(grace)
    return s


@pytest.fixture
def clip_factory(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str, frames: Iterable[np.ndarray], fps: float = 30.0, audio_hz: float | None = None) -> Path:
        return write_clip(tmp_path / name, frames, fps, audio_hz)

    return make
