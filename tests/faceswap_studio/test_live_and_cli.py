"""Live mode over the WebSocket (consent first, token checked) and the `genstudio faceswap` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fs_media import astronaut_bgr, flat_png, jpeg_bytes, png_bytes
from starlette.websockets import WebSocketDisconnect
from test_faceswap_api import CONSENT, audit_items, make_client, upload

REPO = Path(__file__).resolve().parents[2]
TOKEN = "live-test-token-long-enough"


def _live_session(ws: Any, hello: dict[str, Any], frames: int = 3) -> list[dict[str, Any]]:
    ws.send_text(json.dumps(hello))
    ready = ws.receive_json()
    assert ready["type"] == "ready", ready
    stats = []
    for i in range(frames):
        frame = np.roll(astronaut_bgr(320), 2 * i, axis=1)
        ws.send_bytes(jpeg_bytes(frame))
        out = cv2.imdecode(np.frombuffer(ws.receive_bytes(), np.uint8), cv2.IMREAD_COLOR)
        assert out is not None and out.shape == (320, 320, 3)
        stats.append(ws.receive_json())
    return stats


def test_live_mode_needs_consent_and_swaps_frames(settings: Any, face_png: bytes) -> None:

    with make_client(settings) as c:
        source = upload(c, face_png, "face.png")
        with c.websocket_connect("/api/faceswap/live", subprotocols=["genstudio.live"]) as ws:
            assert ws.accepted_subprotocol == "genstudio.live"
            ws.send_text(json.dumps({"source": source}))
            error = ws.receive_json()
            assert error["type"] == "error" and error["detail"].startswith("consent"), error
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 4422
        for first, why in ((b"\xff\xd8\xff", "binary"), ("not json", "not valid JSON"), ("[1]", "an array")):
            with c.websocket_connect("/api/faceswap/live") as ws:
                ws.send_bytes(first) if isinstance(first, bytes) else ws.send_text(first)
                error = ws.receive_json()
                assert error["type"] == "error", error
                assert error["detail"].startswith("first message: must be a JSON object") and why in error["detail"]
                with pytest.raises(WebSocketDisconnect) as closed:
                    ws.receive_json()
                assert closed.value.code == 4422
        # The attempt without consent is audited as refused; malformed first messages are not attempts.
        assert [(r["mode"], r["outcome"]) for r in audit_items(c)] == [("live", "refused")]

        with c.websocket_connect("/api/faceswap/live") as ws:
            stats = _live_session(ws, {"source": source, "consent": CONSENT, "label_corner": "top-right"})
            ws.send_text(json.dumps({"type": "stop"}))
            assert ws.receive_json() == {"type": "ended", "frames": 3}  # sent once the audit row is written
            assert audit_items(c)[0]["outcome"] == "succeeded"
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 1000
        assert [s["frames"] for s in stats] == [1, 2, 3] and all(s["fps"] >= 0 for s in stats)
        assert stats[-1]["faces"] == 1
        row = audit_items(c)[0]
        assert row["mode"] == "live" and row["outcome"] == "succeeded" and row["stats"]["frames"] == 3

        flat = upload(c, flat_png(), "flat.png")
        with c.websocket_connect("/api/faceswap/live") as ws:
            ws.send_text(json.dumps({"source": flat, "consent": CONSENT}))
            error = ws.receive_json()
            assert error == {"type": "error", "detail": "source: no face found in the source photo"}


def test_live_frames_carry_the_label(settings: Any, face_png: bytes) -> None:
    from genstudio.faceswap.verify_media import label_report

    with make_client(settings) as c:
        source = upload(c, face_png, "face.png")
        with c.websocket_connect("/api/faceswap/live") as ws:
            ws.send_text(json.dumps({"source": source, "consent": CONSENT, "label_corner": "bottom-left"}))
            assert ws.receive_json()["type"] == "ready"
            ws.send_bytes(jpeg_bytes(astronaut_bgr(320)))
            out = cv2.imdecode(np.frombuffer(ws.receive_bytes(), np.uint8), cv2.IMREAD_COLOR)
    report = label_report([out])
    assert report["found"] and report["corner"] == "bottom-left", report


def test_live_socket_needs_the_token(settings: Any, face_png: bytes) -> None:
    with make_client(settings, api_token=TOKEN) as c:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        r = c.post("/api/uploads", files={"file": ("face.png", face_png)}, headers=auth)
        source = r.json()["asset_id"]
        wrong: list[dict[str, Any]] = [
            {},
            {"headers": {"Authorization": "Bearer wrong"}},
            {"subprotocols": ["genstudio.live", "bearer.no"]},
            {"subprotocols": ["genstudio.live"]},
        ]
        for kwargs in wrong:
            # Accepted, then closed: a refusal at the handshake would reach a browser as a bare HTTP 403.
            with c.websocket_connect("/api/faceswap/live", **kwargs) as ws:
                assert ws.accepted_subprotocol == ("genstudio.live" if "subprotocols" in kwargs else None)
                with pytest.raises(WebSocketDisconnect) as refused:
                    ws.receive_json()
            assert refused.value.code == 4401 and refused.value.reason.startswith("token:"), kwargs
        assert c.get("/api/faceswap/audit", headers=auth).json()["items"] == []  # nothing ran for them
        with c.websocket_connect("/api/faceswap/live", headers=auth) as ws:
            _live_session(ws, {"source": source, "consent": CONSENT}, frames=1)
        # A browser cannot send headers: the token rides as a second subprotocol, never echoed back.
        with c.websocket_connect("/api/faceswap/live", subprotocols=["genstudio.live", f"bearer.{TOKEN}"]) as ws:
            assert ws.accepted_subprotocol == "genstudio.live"
            _live_session(ws, {"source": source, "consent": CONSENT}, frames=1)
        rows = c.get("/api/faceswap/audit", headers=auth).json()["items"]
        assert len(rows) == 2 and all(r["actor"].startswith("token:") and TOKEN not in r["actor"] for r in rows)


def run_cli(capsys: Any, *args: str, data_dir: Path) -> tuple[int, str, str]:
    """`genstudio faceswap ARGS` in this process (so a stand-in engine, if any, is used too)."""
    from genstudio.cli import main

    code = main(["faceswap", *args, "--data-dir", str(data_dir), "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_refuses_without_consent_and_swaps_an_image(tmp_path: Path, capsys: Any) -> None:
    face = tmp_path / "face.png"
    face.write_bytes(png_bytes(astronaut_bgr(384)))
    target = tmp_path / "target.png"
    target.write_bytes(png_bytes(astronaut_bgr(300)))
    data = tmp_path / "data"
    out = tmp_path / "out.png"

    code, _, err = run_cli(capsys, "--source", str(face), "--target", str(target), "--subject", "Ann", "-o", str(out),
                           data_dir=data)
    assert code == 1 and not out.exists()
    assert err.strip().count("\n") == 0 and err.startswith("genstudio: error: --consent:"), err
    code, _, err = run_cli(capsys, "--source", str(face), "--target", str(target), "--consent", "ok",
                           "--subject", "Ann", "-o", str(out), data_dir=data)
    assert code == 1 and err.startswith("genstudio: error: --consent:") and "at least 20" in err, err
    # The contract's form (no --subject) works; the consent record then says the person is not named.
    unnamed = tmp_path / "unnamed.png"
    code, _, err = run_cli(capsys, "--source", str(face), "--target", str(target), "--consent", CONSENT["statement"],
                           "-o", str(unnamed), data_dir=data)
    assert code == 0 and unnamed.is_file() and "warning: --subject not given" in err, err
    code, _, err = run_cli(capsys, "--source", str(face), "--target", str(target), "--consent", CONSENT["statement"],
                           "--subject", "Ann", "-o", str(tmp_path / "out.mp4"), data_dir=data)
    assert code == 1 and "-o:" in err

    code, stdout, err = run_cli(capsys, "--source", str(face), "--target", str(target), "--consent",
                                CONSENT["statement"], "--subject", "Ann", "--label-corner", "top-left", "--hand-mask",
                                "-o", str(out), data_dir=data)
    assert code == 0, err
    answer = json.loads(stdout)
    assert answer["file"] == str(out) and out.read_bytes().startswith(b"\x89PNG")
    from genstudio.cli import main

    assert main(["verify", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["watermark"]["found"] and report["manifest"]["valid"] and report["label"]["corner"] == "top-left"
    assert report["manifest"]["assertions"]["org.genstudio.generation"]["consent_id"] == answer["consent_id"]
    assert report["manifest"]["assertions"]["org.genstudio.generation"]["options"]["hand_mask"] is True

    flat = tmp_path / "flat.png"
    flat.write_bytes(flat_png())
    code, _, err = run_cli(capsys, "--source", str(flat), "--target", str(target), "--consent", CONSENT["statement"],
                           "--subject", "Ann", "-o", str(tmp_path / "none.png"), data_dir=data)
    assert code == 1 and err.startswith("genstudio: error: source:") and "face" in err, err
    assert not (tmp_path / "none.png").exists()

    from genstudio.faceswap.safeguards import audit_page
    from genstudio.storage.db import Store, make_engine

    items, _ = audit_page(Store(make_engine(f"sqlite:///{data / 'genstudio.db'}")), 10, None)
    # Refused attempts (no consent, a too-short statement) are audited too, with the reason.
    assert [(i["mode"], i["outcome"]) for i in items] == [
        ("cli", "failed"), ("cli", "succeeded"), ("cli", "succeeded"), ("cli", "refused"), ("cli", "refused")
    ]
    assert "at least 20" in items[3]["error"] and items[4]["error"].startswith("consent:")
    assert items[0]["error"] == "source: no face found in the source photo"
    assert items[1]["output"]["sha256"] == answer["sha256"] and items[1]["consent"]["subject"] == "Ann"

    code, _, err = run_cli(capsys, "--source", str(face), "--target", str(target), "--consent", CONSENT["statement"],
                           "--subject", "Ann", "--target-face", "3", "-o", str(tmp_path / "three.png"), data_dir=data)
    assert code == 1 and not (tmp_path / "three.png").exists()
    assert err == "genstudio: error: target_face: no face 3 in the target (it shows 1 face(s))\n", err
    assert items[2]["consent"]["subject"].startswith("not named")


def test_live_sessions_are_capped(settings: Any, face_png: bytes) -> None:
    with make_client(settings, faceswap_live_max_sessions=1) as c:
        source = upload(c, face_png, "face.png")
        with c.websocket_connect("/api/faceswap/live") as first:
            first.send_text(json.dumps({"source": source, "consent": CONSENT}))
            assert first.receive_json()["type"] == "ready"
            with c.websocket_connect("/api/faceswap/live") as second:
                second.send_text(json.dumps({"source": source, "consent": CONSENT}))
                error = second.receive_json()
                assert error["type"] == "error" and "GENSTUDIO_FACESWAP_LIVE_MAX_SESSIONS" in error["detail"]
                with pytest.raises(WebSocketDisconnect) as closed:
                    second.receive_json()
                assert closed.value.code == 4429
        with c.websocket_connect("/api/faceswap/live") as again:  # the slot is free once the first ends
            _live_session(again, {"source": source, "consent": CONSENT}, frames=1)


def test_cli_swaps_a_video_and_verify_reports_it(tmp_path: Path, clip: Path, capsys: Any) -> None:
    from genstudio.cli import main

    face = tmp_path / "face.jpg"
    face.write_bytes(jpeg_bytes(astronaut_bgr(384)))
    out = tmp_path / "swapped.mp4"
    code, stdout, err = run_cli(capsys, "--source", str(face), "--target", str(clip), "--consent", CONSENT["statement"],
                                "--subject", "Ann", "--many-faces", "-o", str(out), data_dir=tmp_path / "data")
    assert code == 0, err
    assert json.loads(stdout)["stats"]["frames"] == 8
    assert main(["verify", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "mp4" and report["video"]["frames"] == 8 and report["video"]["width"] == 320
    assert report["watermark"]["found"] and report["watermark"]["method"] == "syncmark", report["watermark"]
    assert report["watermark"]["frames_checked"] == 8 and report["watermark"]["bit_errors"] <= 3
    assert report["label"]["found"] and report["label"]["corner"] == "bottom-right"
    assert report["manifest"]["valid"] and report["ai_generated"]
    assert list((tmp_path / "data" / "tmp").iterdir()) == []  # no temporary video left behind

    missing = tmp_path / "missing.mp4"
    code, stdout, err = run_cli(capsys, "--source", str(face), "--target", str(clip), "--consent", CONSENT["statement"],
                                "--subject", "Ann", "--target-face", "3", "-o", str(missing),
                                data_dir=tmp_path / "data")
    assert code == 1 and stdout == "" and not missing.exists()
    assert err == "genstudio: error: target_face: no face 3 in the target (it shows 1 face(s))\n", err
    assert list((tmp_path / "data" / "tmp").iterdir()) == []


def test_live_socket_refuses_other_origins(settings: Any, face_png: bytes) -> None:
    with make_client(settings) as c:
        source = upload(c, face_png, "face.png")
        with c.websocket_connect(
            "/api/faceswap/live", headers={"Origin": "https://evil.example"}, subprotocols=["genstudio.live"]
        ) as ws:
            assert ws.accepted_subprotocol == "genstudio.live"  # accepted, so that the page sees the code
            with pytest.raises(WebSocketDisconnect) as refused:
                ws.receive_json()
        assert refused.value.code == 4403 and refused.value.reason.startswith("origin:")
        assert audit_items(c) == []
        with c.websocket_connect("/api/faceswap/live", headers={"Origin": "http://testserver"}) as ws:
            _live_session(ws, {"source": source, "consent": CONSENT}, frames=1)


def test_live_refusals_reach_a_real_client_as_close_codes(settings: Any) -> None:
    """Over a real socket (uvicorn, the `websockets` client): a refused socket is opened and then closed with
    its code and reason; a refusal in the handshake would be a bare HTTP 403 that a page cannot read."""
    import socket
    import threading
    import time

    import uvicorn
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    from genstudio.api.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(settings.model_copy(update={"api_token": TOKEN}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        url = f"ws://127.0.0.1:{port}/api/faceswap/live"
        cases = [
            ({"subprotocols": ["genstudio.live", "bearer.wrong"]}, 4401, "token:"),
            ({"subprotocols": ["genstudio.live"]}, 4401, "token:"),
            (
                {"subprotocols": ["genstudio.live", f"bearer.{TOKEN}"], "origin": "https://evil.example"},
                4403,
                "origin:",
            ),
        ]
        for kwargs, code, reason in cases:
            with connect(url, open_timeout=10, **kwargs) as ws:
                assert ws.subprotocol == "genstudio.live"  # the token is never echoed back
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=10)
            assert closed.value.rcvd is not None, kwargs
            assert closed.value.rcvd.code == code and closed.value.rcvd.reason.startswith(reason), closed.value
    finally:
        server.should_exit = True
        thread.join(timeout=10)
