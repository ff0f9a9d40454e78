"""Scratch files a crash leaves (face-swap video parts, probe copies, WAV renders, uploads in flight) are
removed when the server starts; genstudio's scratch in the shared system temp dir only once it is old."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient


def test_scratch_left_by_a_crash_is_swept_at_start(tmp_path: Path) -> None:
    from genstudio.api.app import create_app
    from genstudio.config import Settings

    settings = Settings(data_dir=tmp_path / "data", executor="thread")
    scratch = settings.data_dir / "tmp"
    scratch.mkdir(parents=True)
    left = [
        scratch / ".tmpab12cd.3f9e01aa.part.mp4",  # a face swap's half-written video
        scratch / "tmpab12cd.mp4",  # its target copy
        scratch / "probe-xyz.video",  # an upload's ffmpeg probe copy
        scratch / ".0a1b.png.part",  # an asset write in flight
    ]
    for p in left:
        p.write_bytes(b"x" * 1000)
    render = scratch / "genstudio-scratch-wav-q1w2"
    render.mkdir()
    (render / "out.wav").write_bytes(b"RIFF" + b"\0" * 5000)

    system = Path(tempfile.gettempdir())
    old = Path(tempfile.mkstemp(prefix="genstudio-scratch-verify-", suffix=".mp4")[1])
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    fresh = Path(tempfile.mkstemp(prefix="genstudio-scratch-verify-", suffix=".mp4")[1])  # another server's, in use
    other = Path(tempfile.mkstemp(prefix="someone-else-", dir=system)[1])
    os.utime(other, (two_hours_ago, two_hours_ago))
    try:
        with TestClient(create_app(settings)) as client:
            assert client.get("/api/health").status_code == 200
        assert not [p for p in left if p.exists()]
        assert not render.exists()
        assert not old.exists()
        assert fresh.exists() and other.exists()
    finally:
        for p in (old, fresh, other):
            p.unlink(missing_ok=True)
