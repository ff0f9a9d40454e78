"""Hostile files (issue 14, items 1 and 2): nothing heavy on the event loop, memory bounded by construction.

Each test is named after the attack. Peak memory is the peak RSS growth of a child process that handles the
file (PIL, OpenCV and ffmpeg allocate outside tracemalloc's view)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services import free_port, genstudio, wait_http  # noqa: E402

PEAK_MB = 200

_CHILD = """
import json, sys, pathlib
data = pathlib.Path(sys.argv[1]).read_bytes()
{setup}
def _status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
with open("/proc/self/clear_refs", "w") as fh:  # resets the peak (VmHWM) to the current RSS
    fh.write("5")
before = _status("VmRSS")
result = {call}
print(json.dumps({{"peak_mb": _status("VmHWM") - before, "result": result}}))
"""


def child_peak(tmp_path: Path, data: bytes, setup: str, call: str) -> tuple[float, object]:
    """(peak RSS growth in MB, JSON result) of `call` on `data` in a fresh interpreter, after `setup`."""
    src = tmp_path / "hostile.bin"
    src.write_bytes(data)
    code = _CHILD.format(setup=textwrap.dedent(setup), call=call)
    out = subprocess.run([sys.executable, "-c", code, str(src)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    return answer["peak_mb"], answer["result"]


def midi_of(notes: int, *, end_ticks: int = 0, step: int = 10) -> bytes:
    import mido

    mf = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mf.tracks.append(track)
    for i in range(notes):
        pitch = 60 + i % 12
        track.append(mido.Message("note_on", note=pitch, velocity=80, time=step))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=step))
    track.append(mido.MetaMessage("end_of_track", time=end_ticks))
    buf = io.BytesIO()
    mf.save(file=buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `genstudio serve` that takes uploads up to 20 MiB (the default), so a 3.2 MB MIDI reaches the parser."""
    root = tmp_path_factory.mktemp("hostile-server")
    port = free_port()
    env = {"GENSTUDIO_DATA_DIR": str(root / "data"), "GENSTUDIO_EXECUTOR": "thread", "GENSTUDIO_ALLOWED_HOSTS": ""}
    proc = genstudio("serve", "--port", str(port), "--log-level", "warning", env=env, log=root / "server.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/api/health")
        yield base
    finally:
        proc.terminate()
        proc.wait(20)


def _upload_while_polling_health(base: str, name: str, data: bytes, mime: str) -> tuple[httpx.Response, list[float]]:
    answer: list[httpx.Response] = []

    def send() -> None:
        answer.append(httpx.post(f"{base}/api/uploads", files={"file": (name, data, mime)}, timeout=120))

    with httpx.Client(timeout=10) as health:
        health.get(f"{base}/api/health")  # connection up before the clock starts
        thread = threading.Thread(target=send)
        thread.start()
        latencies = []
        while thread.is_alive() or not latencies:
            t0 = time.perf_counter()
            assert health.get(f"{base}/api/health").status_code == 200
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.005)
        thread.join()
    return answer[0], latencies


def test_midi_of_400k_notes_refused_without_blocking_health(server: str, tmp_path: Path) -> None:
    hostile = midi_of(400_000)
    assert len(hostile) > 3_000_000
    response, latencies = _upload_while_polling_health(server, "a.mid", hostile, "audio/midi")
    assert response.status_code == 413, response.text
    assert "GENSTUDIO_MAX_MIDI_NOTES" in response.text
    assert max(latencies) < 0.1, f"health took {max(latencies) * 1000:.0f} ms during the upload"

    # The worst allowed file (at the note cap) is parsed in the work pool's child process: pretty_midi holds
    # that process's GIL, not the server's, and health keeps answering within 100 ms.
    allowed = midi_of(20_000, step=5)  # 208 s: under GENSTUDIO_MAX_MIDI_SECONDS
    response, latencies = _upload_while_polling_health(server, "b.mid", allowed, "audio/midi")
    assert response.status_code in (201, 422), response.text
    assert len(latencies) >= 5 and max(latencies) < 0.1, latencies

    setup = """
    from fastapi import HTTPException
    from genstudio.api.routes.uploads import midi_melody
    from genstudio.config import Settings
    def run():
        try:
            return midi_melody(data, Settings())["notes"]
        except HTTPException as exc:
            return [exc.status_code, exc.detail]
    """
    peak, result = child_peak(tmp_path, hostile, setup, "run()")
    assert result[0] == 413 and "GENSTUDIO_MAX_MIDI_NOTES" in result[1]
    assert peak < PEAK_MB, f"{peak:.0f} MB"
    peak_allowed, _ = child_peak(tmp_path, allowed, setup, "run()")
    assert peak_allowed < PEAK_MB, f"{peak_allowed:.0f} MB"
    print(f"\npeak RSS growth: 400k-note MIDI {peak:.1f} MB, 20k-note MIDI {peak_allowed:.1f} MB")


def test_midi_with_far_end_of_track_refused_for_wav(settings, tmp_path: Path) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    from genstudio.api.app import create_app
    from genstudio.music.render import wav_bytes

    # A few notes, then an end-of-track 30 minutes away (120 BPM, 480 ticks per beat).
    far = midi_of(8, end_ticks=480 * 2 * 1800, step=240)
    assert len(far) < 200
    with pytest.raises(ValueError, match="GENSTUDIO_MAX_AUDIO_SECONDS"):
        wav_bytes(far)

    # Uploaded with a generous MIDI length cap, the WAV is still refused, with a 422 naming the setting.
    s = settings.model_copy(update={"max_midi_seconds": 7200.0})
    with TestClient(create_app(s)) as client:
        up = client.post("/api/uploads", files={"file": ("far.mid", far, "audio/midi")})
        assert up.status_code == 201, up.text
        asset = up.json()["asset_id"]
        r = client.get(f"/api/assets/{asset}", params={"format": "wav"})
        assert r.status_code == 422, r.text
        assert "GENSTUDIO_MAX_AUDIO_SECONDS" in r.text
        assert not list((s.data_dir / "cache").rglob("*.wav"))
    # With the default settings the upload itself is refused for its length.
    with TestClient(create_app(settings)) as client:
        up = client.post("/api/uploads", files={"file": ("far.mid", far, "audio/midi")})
        assert up.status_code == 413 and "GENSTUDIO_MAX_MIDI_SECONDS" in up.text

    peak, result = child_peak(
        tmp_path, far, "from genstudio.music.render import wav_bytes\n"
        "def run():\n    try:\n        wav_bytes(data)\n    except ValueError as exc:\n        return str(exc)\n",
        "run()",
    )
    assert "GENSTUDIO_MAX_AUDIO_SECONDS" in result
    assert peak < PEAK_MB


def test_png_of_40M_pixels_refused_by_verify_and_upload(client, tmp_path: Path) -> None:  # noqa: ANN001, N802
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (8000, 5000)).save(buf, "PNG")  # 40 M pixels in a few KB
    png = buf.getvalue()
    assert len(png) < 200_000

    up = client.post("/api/uploads", files={"file": ("big.png", png, "image/png")})
    assert up.status_code == 413 and "GENSTUDIO_MAX_IMAGE_PIXELS" in up.text
    r = client.post("/api/verify", files={"file": ("big.png", png, "image/png")})
    assert r.status_code == 200, r.text
    report = r.json()
    assert "larger than" in json.dumps(report) or "too large" in json.dumps(report)

    setup = """
    from genstudio.provenance.verify import _watermark_report
    from genstudio.faceswap.verify_media import _image_label
    """
    peak, result = child_peak(tmp_path, png, setup, "[_watermark_report(data), _image_label(data)]")
    assert "error" in result[0] and "error" in result[1]
    assert peak < PEAK_MB, f"{peak:.0f} MB"
    print(f"\npeak RSS growth: 40M-pixel PNG through verify {peak:.1f} MB")


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A tiny real JPEG whose frame header (SOF0) claims width x height."""
    import cv2

    ok, buf = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    assert ok
    data = bytearray(buf.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def test_live_jpeg_claiming_12000px_not_decoded_at_full_size(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import cv2

    from genstudio.api.routes.faceswap import LiveSession

    jpeg = _jpeg_claiming(12000, 12000)
    assert len(jpeg) < 1000
    seen: list[tuple[int, ...]] = []
    decoded: list[tuple[int, ...]] = []
    real = cv2.imdecode

    def imdecode(buf, flags):  # noqa: ANN001, ANN202
        out = real(buf, flags)
        decoded.append(out.shape)
        return out

    monkeypatch.setattr(cv2, "imdecode", imdecode)
    from genstudio.provenance.videomark import FrameMarker

    session = SimpleNamespace(
        settings=SimpleNamespace(faceswap_live_max_side=960),
        swapper=SimpleNamespace(swap_frame=lambda frame, track: (seen.append(frame.shape) or frame, 0)),
        track=None, label_corner="bottom-right", index=1, marker=FrameMarker(bytes(6)),
    )
    out, n = LiveSession.process(session, jpeg)
    assert out[:2] == b"\xff\xd8" and n == 0
    assert max(decoded[0][:2]) <= 1500, decoded  # decoded at 1/8, never 12000x12000
    assert max(seen[0][:2]) <= 960

    with pytest.raises(ValueError, match="frame:.*GENSTUDIO_FACESWAP_LIVE_MAX_SIDE"):
        LiveSession.process(session, _jpeg_claiming(60000, 60000))

    setup = """
    from types import SimpleNamespace
    from genstudio.api.routes.faceswap import LiveSession
    from genstudio.provenance.videomark import FrameMarker
    s = SimpleNamespace(settings=SimpleNamespace(faceswap_live_max_side=960),
                        swapper=SimpleNamespace(swap_frame=lambda f, t: (f, 0)), track=None,
                        label_corner="bottom-right", index=1, marker=FrameMarker(bytes(6)))
    """
    peak, _ = child_peak(tmp_path, jpeg, setup, "len(LiveSession.process(s, data)[0])")
    assert peak < PEAK_MB, f"{peak:.0f} MB"
    print(f"\npeak RSS growth: live JPEG claiming 12000x12000 {peak:.1f} MB")


def _video(path: Path, width: int, height: int, frames: int) -> Path:
    from genstudio.faceswap.media import VideoWriter

    frame = np.zeros((height, width, 3), np.uint8)
    frame[:, : width // 2] = (40, 90, 160)
    with VideoWriter(path, width, height, 25.0) as writer:
        for i in range(frames):
            frame[:8, :8] = i
            writer.write(frame)
    return path


def test_verify_of_large_video_reads_bounded_frames(tmp_path: Path) -> None:
    from genstudio.faceswap import media, verify_media

    clip = _video(tmp_path / "wide.mp4", 2560, 1440, 60).read_bytes()
    setup = """
    from genstudio.faceswap import media, verify_media
    count = [0]
    real = media.read_frames
    def counted(path):
        for frame in real(path):
            count[0] += 1
            yield frame
    media.read_frames = counted
    def run():
        report = verify_media.video_report(data)
        return [count[0], report["watermark"].get("frames_checked"), report["label"].get("frames_checked"),
                report["video"]["frames"], report["label"].get("error")]
    """
    peak, (read, checked, labelled, total, error) = child_peak(tmp_path, clip, setup, "run()")
    assert total == 60 and error is None
    assert read <= verify_media.VERIFY_FRAMES and checked <= verify_media.VERIFY_FRAMES
    assert 0 < labelled <= verify_media.LABEL_FRAMES
    assert peak < 2 * PEAK_MB, f"{peak:.0f} MB"  # one frame and the watermark's float blocks; was +1.3 GB
    print(f"\npeak RSS growth: verify of a 2560x1440 MP4 {peak:.1f} MB, {read} frames decoded")

    # Frames over the pixel cap (from the probe) are not decoded at all: an error in the report, no exception.
    huge = _video(tmp_path / "huge.mp4", 4096, 2304, 2).read_bytes()
    calls: list[Path] = []
    real = media.read_frames
    try:
        media.read_frames = lambda path: calls.append(path) or real(path)  # type: ignore[assignment]
        report = verify_media.video_report(huge)
    finally:
        media.read_frames = real  # type: ignore[assignment]
    assert not calls
    assert "pixel limit" in report["label"]["error"] and "pixel limit" in report["watermark"]["error"]
    assert report["video"]["width"] == 4096


def test_a_check_past_its_time_limit_is_stopped_and_the_pool_goes_on(tmp_path: Path) -> None:
    """GENSTUDIO_PARSE_TIMEOUT_S: a parse that runs past it is killed with its process (422 naming the
    setting); the pool replaces the process and the next upload is checked as usual."""
    port = free_port()
    env = {"GENSTUDIO_DATA_DIR": str(tmp_path / "data"), "GENSTUDIO_EXECUTOR": "thread", "GENSTUDIO_ALLOWED_HOSTS": "",
           "GENSTUDIO_PARSE_TIMEOUT_S": "0.3"}
    proc = genstudio("serve", "--port", str(port), "--log-level", "warning", env=env, log=tmp_path / "server.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/api/health")
        slow = midi_of(20_000, step=5)  # about a second of pretty_midi
        r = httpx.post(f"{base}/api/uploads", files={"file": ("slow.mid", slow, "audio/midi")}, timeout=60)
        assert r.status_code == 422, r.text
        assert "GENSTUDIO_PARSE_TIMEOUT_S" in r.text
        small = midi_of(16, step=120)
        r = httpx.post(f"{base}/api/uploads", files={"file": ("small.mid", small, "audio/midi")}, timeout=60)
        assert r.status_code == 201, r.text
        assert r.json()["melody"]["notes"] == 16
    finally:
        proc.terminate()
        proc.wait(20)
