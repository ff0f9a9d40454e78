"""Shared fixtures: a fresh data dir per test, a tiny seeded SD pipeline on disk, a live app."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Starlette's TestClient names its server "testserver": allowed in the tests only (users get loopback names).
os.environ.setdefault("GENSTUDIO_ALLOWED_HOSTS", "testserver")

from tiny_models import save_tiny_sd  # noqa: E402


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_sd(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture
def settings(tmp_path: Path, tiny_sd_dir: Path):  # noqa: ANN201
    from genstudio.config import Settings
    from genstudio.image.models import ModelRegistry

    s = Settings(data_dir=tmp_path / "data", default_image_model="tiny-sd", max_queued_jobs=4, executor="thread")
    s.ensure_dirs()
    ModelRegistry(s).add(str(tiny_sd_dir), name="tiny-sd")
    return s


@pytest.fixture
def client(settings) -> Iterator:  # noqa: ANN001
    from fastapi.testclient import TestClient

    from genstudio.api.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c
