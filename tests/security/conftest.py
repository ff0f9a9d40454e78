"""A real `genstudio serve` with a user's default settings (loopback names only), for the attack tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from security_helpers import MAX_UPLOAD, Studio  # noqa: E402

from services import free_port, genstudio, wait_http  # noqa: E402


@pytest.fixture(scope="session")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    root = tmp_path_factory.mktemp("security-server")
    port = free_port()
    env = {
        "GENSTUDIO_DATA_DIR": str(root / "data"),
        "GENSTUDIO_ALLOWED_HOSTS": "",  # the tests' conftest allows "testserver"; a user's install does not
        "GENSTUDIO_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "GENSTUDIO_EXECUTOR": "thread",
    }
    server = genstudio("serve", "--port", str(port), "--log-level", "warning", env=env, log=root / "server.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/api/health")
        yield Studio(base=base, port=port, data_dir=root / "data")
    finally:
        server.terminate()
        server.wait(20)

