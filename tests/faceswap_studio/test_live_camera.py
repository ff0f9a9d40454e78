"""`genstudio faceswap-live`: a local camera swapped live into a virtual camera. The camera and pyvirtualcam are
stood in for (no camera or v4l2loopback device on CI); the swap, label, watermark, consent and audit are real."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fs_media import astronaut_bgr, grace_hopper_jpeg

from genstudio.cli import main
from genstudio.faceswap.verify_media import label_scores
from genstudio.provenance import syncmark

STATEMENT = "I agree that my face may be used in this school deepfake lab."


class FakeCapture:
    """cv2.VideoCapture of a camera showing the astronaut photo, drifting."""

    opened: list[int] = []

    def __init__(self, index: int) -> None:
        self.index, self.n = index, 0
        FakeCapture.opened.append(index)
        base = np.full((480, 640, 3), 90, np.uint8)
        face = astronaut_bgr(300)
        base[90:390, 170:470] = face
        self.base = base

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.index == 0

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.n += 1
        return True, np.roll(self.base, self.n, axis=1).copy()

    def release(self) -> None:
        pass


def fake_pyvirtualcam(sent: list[np.ndarray], fail: str | None = None) -> types.ModuleType:
    module = types.ModuleType("pyvirtualcam")

    class Camera:
        device = "/dev/video9"

        def __init__(self, width: int, height: int, fps: float, fmt: Any = None) -> None:
            if fail:
                raise RuntimeError(fail)
            self.size = (width, height)

        def send(self, frame: np.ndarray) -> None:
            assert frame.shape == (self.size[1], self.size[0], 3)
            sent.append(frame.copy())

        def sleep_until_next_frame(self) -> None:
            pass

        def close(self) -> None:
            pass

    module.Camera = Camera
    module.PixelFormat = types.SimpleNamespace(RGB="RGB")
    return module


def _args(tmp_path: Path, *extra: str) -> list[str]:
    face = tmp_path / "face.jpg"
    face.write_bytes(grace_hopper_jpeg())
    return ["faceswap-live", "--source", str(face), "--consent", STATEMENT, "--subject", "Test Subject",
            "--data-dir", str(tmp_path / "data"), *extra]


def test_live_camera_into_a_virtual_camera(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys,
                                           settings: Any) -> None:
    sent: list[np.ndarray] = []
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    monkeypatch.setitem(sys.modules, "pyvirtualcam", fake_pyvirtualcam(sent))
    assert main(_args(tmp_path, "--frames", "6")) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["frames"] == 6 and stats["frames_with_faces"] >= 5 and stats["virtual_camera"] == "/dev/video9"
    assert len(sent) == 6
    last = np.ascontiguousarray(sent[-1][:, :, ::-1])  # back to BGR
    assert max(label_scores(last).values()) > 0.8  # the visible label is on the feed
    reading = syncmark.read(sent[-1])
    assert reading.found  # and the invisible mark
    # The session is in the audit log, with its consent.
    from test_faceswap_api import audit_items, make_client

    with make_client(settings, data_dir=tmp_path / "data") as c:
        (row,) = audit_items(c)
    assert row["mode"] == "live" and row["outcome"] == "succeeded" and row["consent"]["id"], row
    assert row["stats"]["frames"] == 6 and row["stats"]["virtual_camera"] == "/dev/video9"


def test_no_virtual_camera_is_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)  # not installed
    assert main(_args(tmp_path, "--frames", "2")) != 0
    assert "pip install pyvirtualcam" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "pyvirtualcam", fake_pyvirtualcam([], fail="'/dev/video*' not found"))
    assert main(_args(tmp_path, "--frames", "2")) != 0
    err = capsys.readouterr().err
    assert "no device to send to" in err and "v4l2loopback" in err
    # Without a virtual camera on purpose it runs (a dry run), and a missing camera is named.
    assert main(_args(tmp_path, "--frames", "2", "--no-virtual-camera")) == 0
    capsys.readouterr()
    assert main(_args(tmp_path, "--frames", "2", "--camera", "3", "--no-virtual-camera")) != 0
    assert "camera 3 could not be opened" in capsys.readouterr().err


def test_live_camera_needs_consent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    FakeCapture.opened.clear()
    args = _args(tmp_path, "--frames", "2", "--no-virtual-camera")
    args[args.index("--subject") + 1] = " "
    assert main(args) != 0
    assert "--subject" in capsys.readouterr().err
    assert FakeCapture.opened == []  # refused before the camera was opened
