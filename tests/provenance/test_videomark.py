"""The image watermark on video frames (`provenance.videomark`): what the face-swap studio writes into every
frame, read back by `verify` from the video, from copies made the way videos travel, and from stills taken
out of it. Copies are made with the real ffmpeg (x264), on a clip built from public-domain photos."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from genstudio.faceswap import verify_media
from genstudio.faceswap.media import VideoWriter, ffmpeg_exe, read_frames
from genstudio.provenance import syncmark
from genstudio.provenance.stage import soft_binding
from genstudio.provenance.store import ManifestStore
from genstudio.provenance.verify import verify_bytes
from genstudio.provenance.videomark import FrameMarker, read_video

IDENT = bytes.fromhex("c0ffee123456")
FRAMES = 24


def _clip_frames() -> list[np.ndarray]:
    """The astronaut photo moving (pan, zoom, tilt) over scikit-image's coffee photo, 640x480."""
    from skimage.data import astronaut, coffee

    bg = cv2.resize(cv2.cvtColor(coffee(), cv2.COLOR_RGB2BGR), (640, 480))
    photo = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR)
    frames = []
    for i in range(FRAMES):
        m = cv2.getRotationMatrix2D((256, 256), 5 * np.sin(i / 5), (300 + 4 * i) / 512)
        m[:, 2] += np.array([300 + 3 * i, 240 + 10 * np.sin(i / 4)]) - 256
        mask = cv2.warpAffine(np.full((512, 512), 255, np.uint8), m, (640, 480)) > 127
        frame = bg.copy()
        frame[mask] = cv2.warpAffine(photo, m, (640, 480))[mask]
        frames.append(frame)
    return frames


def _write(frames: list[np.ndarray], path: Path) -> Path:
    with VideoWriter(path, frames[0].shape[1], frames[0].shape[0], 30.0, crf=20) as writer:
        for f in frames:
            writer.write(f)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("videomark")
    frames = _clip_frames()
    marker = FrameMarker(IDENT)
    marked = [marker.embed(f) for f in frames]
    assert marker.psnr_db is not None and marker.psnr_db >= 40.0
    assert min(cv2.PSNR(a, b) for a, b in zip(frames, marked, strict=True)) >= 40.0
    return {"marked": _write(marked, tmp / "marked.mp4"), "plain": _write(frames, tmp / "plain.mp4")}


def _copy(src: Path, vf: str, crf: int, dst: Path) -> bytes:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-vf", vf, "-c:v",
                    "libx264", "-preset", "medium", "-crf", str(crf), "-pix_fmt", "yuv420p", str(dst)], check=True)
    return dst.read_bytes()


def _still(path: Path, index: int) -> bytes:
    frame = next(f for i, f in enumerate(read_frames(path)) if i == index)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame[:, :, ::-1])).save(buf, "PNG")
    return buf.getvalue()


def test_embed_marks_every_frame_and_skips_tiny_ones() -> None:
    frame = _clip_frames()[0]
    marker = FrameMarker(IDENT)
    marked = marker.embed(frame)
    assert marked.shape == frame.shape and marked.dtype == np.uint8 and not np.array_equal(marked, frame)
    reading = syncmark.read(np.ascontiguousarray(marked[:, :, ::-1]), search=False)
    assert reading.found and reading.ident == IDENT and reading.corrected == 0
    tiny = np.zeros((80, 200, 3), np.uint8)
    assert marker.embed(tiny) is tiny
    with pytest.raises(ValueError, match="6 bytes"):
        FrameMarker(b"short")


@pytest.mark.parametrize(("name", "vf", "crf"), [
    ("x264 crf 23", "null", 23),
    ("x264 crf 28", "null", 28),
    ("scaled 0.75x", "scale=480:360", 23),
    ("scaled 1.5x", "scale=960:720", 23),
    ("cropped 10% each side", "crop=512:384", 23),
    ("cropped 25% from the left", "crop=480:480:160:0", 23),
    ("cropped 10% each side, crf 28", "crop=512:384", 28),
    ("brighter", "eq=brightness=0.08", 23),
])
def test_video_copies_keep_the_mark(videos: dict[str, Path], tmp_path: Path, name: str, vf: str, crf: int) -> None:
    report = verify_media.video_report(_copy(videos["marked"], vf, crf, tmp_path / "copy.mp4"))["watermark"]
    assert report["found"] and report["method"] == "syncmark", (name, report)
    assert report["payload"] == IDENT.hex() and report["bit_errors"] <= 6, (name, report)  # <= 10% of 64
    assert 0.5 < report["confidence"] <= 1 and report["read_from"]


def test_the_output_itself_reads_from_the_mean_of_its_first_frames(videos: dict[str, Path]) -> None:
    report = verify_media.video_report(videos["marked"].read_bytes())["watermark"]
    assert report["found"] and report["bit_errors"] == 0 and report["read_from"].startswith("mean of the first")
    assert report["looks"] == 1


def test_unmarked_video_is_not_found(videos: dict[str, Path], tmp_path: Path) -> None:
    for data in (videos["plain"].read_bytes(), _copy(videos["plain"], "scale=480:360", 23, tmp_path / "p.mp4")):
        report = verify_media.video_report(data)["watermark"]
        assert not report["found"] and report["payload"] is None and report["confidence"] < 0.5


def test_stills_from_the_video_are_read_by_the_image_reader(videos: dict[str, Path]) -> None:
    """One reader for every still: a key frame and a predicted frame saved as PNG, and a screenshot (the
    frame at an offset in a bigger window), read by verify as images."""
    for index in (0, 13):
        report = verify_bytes(_still(videos["marked"], index), filename="frame.png",
                              inspectors=[verify_media.inspect])
        assert report["watermark"]["found"] and report["watermark"]["payload"] == IDENT.hex(), (index, report)
        assert report["ai_generated"] is True
    frame = next(read_frames(videos["marked"]))
    canvas = np.full((700, 900, 3), 236, np.uint8)
    canvas[:40] = 60
    canvas[97:577, 131:771] = frame
    shot = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(canvas[:, :, ::-1])).save(shot, "PNG")
    report = verify_bytes(shot.getvalue(), filename="shot.png")
    assert report["watermark"]["found"] and report["watermark"]["payload"] == IDENT.hex()
    plain = verify_bytes(_still(videos["plain"], 13), filename="plain.png", inspectors=[verify_media.inspect])
    assert not plain["watermark"]["found"] and plain["ai_generated"] == "unknown"


def test_a_copy_gets_its_credentials_back(videos: dict[str, Path], tmp_path: Path) -> None:
    """Soft binding for videos: the stored manifest comes back for a re-encoded copy with no manifest."""
    store = ManifestStore(tmp_path / "manifests")
    stored = {"found": True, "valid": True, "ai_generated": True, "title": "face swap",
              "assertions": {"c2pa.soft-binding": soft_binding(IDENT.hex())["data"]}}
    store.put(IDENT.hex(), stored)
    copy = _copy(videos["marked"], "scale=480:360", 23, tmp_path / "copy.mp4")
    report = verify_bytes(copy, filename="copy.mp4", inspectors=[verify_media.inspect], manifests=store)
    assert report["manifest"]["recovered"] is True and report["manifest"]["title"] == "face swap"
    assert report["ai_generated"] is True and "watermark" in report["signals"]


def test_read_video_stops_at_the_first_find_and_reports_the_closest_look() -> None:
    frame = cv2.cvtColor(_clip_frames()[3], cv2.COLOR_BGR2GRAY).astype(np.float32)
    marked = cv2.cvtColor(FrameMarker(IDENT).embed(_clip_frames()[3]), cv2.COLOR_BGR2GRAY).astype(np.float32)
    found = read_video(None, 0, iter([frame, marked, frame]))
    assert found.found and found.source == "key frame 1" and found.looks == 2
    missing = read_video(frame, 1, iter([frame]))
    assert not missing.found and missing.looks == 2 and missing.report()["payload"] is None
