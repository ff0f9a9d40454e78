"""Video in/out, the visible label, the video watermark and the whole swap_video pipeline on built clips."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from faceswap_clips import background, place, requires_models

from genstudio.faceswap.engine import FaceSwapper, SwapOptions
from genstudio.faceswap.label import CORNERS, draw_label, label_box
from genstudio.faceswap.media import VideoWriter, frame_rate, probe, read_frames
from genstudio.faceswap.pipeline import swap_video
from genstudio.faceswap.verify_media import video_report
from genstudio.faceswap.video_watermark import (
    detect_frame,
    detect_frames,
    detect_video,
    embed_frame,
    frame_votes,
)
from genstudio.provenance import syncmark
from genstudio.provenance.watermark import tag_bit_errors

N = 48  # frames per clip: 1.6 s at 30 fps


def _moving_clip(astronaut: np.ndarray) -> list[np.ndarray]:
    """Pan, zoom and tilt, then the face slides out of the frame and is gone for the last frames."""
    frames = []
    for i in range(N):
        if i < 30:
            cy, angle = 240 + 20 * np.sin(i / 6), 6 * np.sin(i / 8)
            frame = place(background(), astronaut, 300 + 3 * i, cy, 500 + 4 * i, angle)
        elif i < 40:
            frame = place(background(), astronaut, 400 + 45 * (i - 29), 240, 620)
        else:
            frame = background()
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> Path:
    from faceswap_clips import write_clip

    return write_clip(tmp_path_factory.mktemp("clips") / "moving.mp4", _moving_clip(astronaut), 25.0, audio_hz=440)


@pytest.fixture(scope="module")
def swapped(tmp_path_factory: pytest.TempPathFactory, swapper: FaceSwapper, clip: Path) -> tuple[Path, dict, list]:
    out = tmp_path_factory.mktemp("out") / "swapped.mp4"
    calls: list[float] = []
    stats = swap_video(swapper, clip, out, SwapOptions(), label_corner="top-left", progress=calls.append)
    return out, stats, calls


def test_probe_reads_the_clip(clip: Path) -> None:
    info = probe(clip)
    assert (info.width, info.height, info.frames, info.codec) == (640, 480, N, "h264")
    assert info.fps == pytest.approx(25.0)
    assert info.has_audio and info.audio_codec == "aac"
    assert info.duration_s == pytest.approx(N / 25.0, abs=0.1)


def test_probe_refuses_what_is_not_a_video(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all")
    with pytest.raises(ValueError, match="not a readable video"):
        probe(text)
    still = tmp_path / "still.png"
    cv2.imwrite(str(still), background())
    with pytest.raises(ValueError, match="still image"):
        probe(still)
    with pytest.raises(ValueError, match="no such file"):
        probe(tmp_path / "missing.mp4")


def test_rotated_phone_video_is_read_upright(tmp_path: Path) -> None:
    from genstudio.faceswap.media import ffmpeg_exe

    plain = tmp_path / "plain.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=320x240:rate=10:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(plain)],
                   check=True)
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-display_rotation", "90", "-i",
                    str(plain), "-c", "copy", str(rotated)], check=True)
    info = probe(rotated)
    frames = list(read_frames(rotated))
    assert (info.width, info.height) == (240, 320) and frames[0].shape == (320, 240, 3) and len(frames) == 10


def test_writer_keeps_ntsc_rates_exact(tmp_path: Path) -> None:
    assert str(frame_rate(29.97)) == "30000/1001" and str(frame_rate(25.0)) == "25"
    out = tmp_path / "ntsc.mp4"
    with VideoWriter(out, 64, 48, 29.97) as writer:
        for i in range(30):
            writer.write(np.full((48, 64, 3), i * 8, np.uint8))
    info = probe(out)
    assert info.fps == pytest.approx(29.97) and info.frames == 30
    assert info.duration_s == pytest.approx(30 * 1001 / 30000, abs=0.02)


def test_writer_removes_partial_output_on_error(tmp_path: Path) -> None:
    out = tmp_path / "x.mp4"
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(out, 64, 48, 10) as writer:
        writer.write(np.zeros((48, 64, 3), np.uint8))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@requires_models
def test_swap_video_output_format(swapped: tuple[Path, dict, list], clip: Path) -> None:
    out, stats, calls = swapped
    info = probe(out)
    assert info.codec == "h264" and info.frames == N and info.fps == pytest.approx(25.0)
    assert info.has_audio
    assert (info.width, info.height) == (640, 480)
    assert stats["frames"] == N
    # The face is visible, whole or in part, in the first ~36 frames and gone in the last 8.
    assert 28 <= stats["faces_swapped_frames"] <= 40
    assert set(stats["seconds"]) >= {"decode", "swap", "label", "watermark", "encode", "total"}
    assert len(calls) >= N // 5 and calls[-1] == 1.0 and calls == sorted(calls)
    assert [p.name for p in out.parent.iterdir()] == ["swapped.mp4"]


@requires_models
def test_swapped_video_differs_on_the_face_only(swapped: tuple[Path, dict, list], clip: Path,
                                                swapper: FaceSwapper) -> None:
    out, _, _ = swapped
    before, after = list(read_frames(clip)), list(read_frames(out))
    (det,) = swapper.landmarker.detect(before[10])
    x0, y0, x1, y1 = det.box.astype(int)
    diff = np.abs(after[10].astype(int) - before[10].astype(int)).mean(axis=2)
    assert diff[y0 + 10:y1 - 10, x0 + 10:x1 - 10].mean() > 8
    # Outside the face and the label, only the watermark's faint chroma and re-encoding remain.
    diff[:80, :260] = 0
    diff[y0 - 40:y1 + 40, x0 - 40:x1 + 40] = 0
    assert diff.mean() < 3.5


@requires_models
def test_label_and_watermark_in_output(swapped: tuple[Path, dict, list]) -> None:
    out, _, _ = swapped
    frames = list(read_frames(out))
    x, y, w, h = label_box(640, 480, "top-left")
    assert x < 20 and y < 20
    box = frames[-1][y:y + h, x:x + w].astype(int)   # last frame: no face, plain background under the label
    assert (box.max(axis=2) > 200).mean() > 0.05        # white text
    assert (box.max(axis=2) < 60).mean() > 0.3          # dark box
    stats = swapped[1]
    result = video_report(out.read_bytes())["watermark"]
    assert result["found"] and result["method"] == "syncmark" and result["bit_errors"] <= 3, result
    assert result["payload"] == stats["mark_id"] and stats["mark_psnr_db"] >= 40.0


@requires_models
def test_watermark_survives_reencoding_and_jpeg(swapped: tuple[Path, dict, list], tmp_path: Path) -> None:
    out, stats, _ = swapped

    def jpeg75(frame: np.ndarray) -> np.ndarray:
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 75])
        return cv2.imdecode(data, cv2.IMREAD_COLOR)

    # A frame saved as JPEG q75 reads with the image reader (every frame is marked; x264 codes the mark
    # coarser in some frames, so most, not all, of the copies read), and never as another id.
    readings = [syncmark.read(np.ascontiguousarray(jpeg75(f)[:, :, ::-1])) for f in list(read_frames(out))[::4]]
    assert sum(r.found for r in readings) >= 0.8 * len(readings)
    assert all(r.ident.hex() == stats["mark_id"] for r in readings if r.found)
    again = tmp_path / "crf23.mp4"
    with VideoWriter(again, 640, 480, 25.0, crf=23, preset="medium") as writer:
        for frame in read_frames(out):
            writer.write(frame)
    result = video_report(again.read_bytes())["watermark"]
    assert result["found"] and result["payload"] == stats["mark_id"] and result["bit_errors"] <= 3


def test_unmarked_video_has_no_watermark(clip: Path) -> None:
    result = detect_video(clip)  # the previous mark's reader (older outputs)
    assert not result["present"] and result["bit_errors"] > 10 and result["frames_detected"] == 0
    assert not video_report(clip.read_bytes())["watermark"]["found"]


def test_embed_frame_marks_every_kth_frame_only() -> None:
    frame = background()
    assert embed_frame(frame, 1) is frame
    marked = embed_frame(frame, 0)
    assert cv2.PSNR(frame, marked) > 30
    assert tag_bit_errors(frame_votes(marked) > 0) == 0
    assert detect_frame(marked) == (True, 0) and detect_frame(frame)[0] is False
    small = np.zeros((100, 120, 3), np.uint8)
    assert embed_frame(small, 0) is small
    assert detect_frame(small) == (False, None)
    assert detect_frames([small])["frames_checked"] == 0


@pytest.mark.parametrize("size", [(320, 240), (640, 480), (3840, 2160)])
@pytest.mark.parametrize("corner", CORNERS)
def test_label_in_the_chosen_corner(size: tuple[int, int], corner: str) -> None:
    w, h = size
    frame = np.full((h, w, 3), 128, np.uint8)
    out = draw_label(frame, corner)
    assert out is not frame and np.array_equal(frame, np.full((h, w, 3), 128, np.uint8))
    changed = np.nonzero(np.abs(out.astype(int) - 128).sum(axis=2))
    ys, xs = changed
    top, left = corner.startswith("top"), corner.endswith("left")
    assert (ys < h / 2).all() == top and (ys >= h / 2).all() == (not top)
    assert (xs < w / 2).all() == left and (xs >= w / 2).all() == (not left)
    bx, by, bw, bh = label_box(w, h, corner)
    assert bh >= 0.04 * h and bh >= 14               # legible: scales with the frame, never tiny
    assert bw < 0.5 * w
    white = (out[by:by + bh, bx:bx + bw].min(axis=2) > 200).sum()
    assert white > 0.04 * bw * bh                    # text strokes
    assert (out[by:by + bh, bx:bx + bw] < 80).all(axis=2).mean() > 0.3   # semi-opaque dark box


def test_label_refuses_unknown_corner() -> None:
    with pytest.raises(ValueError, match="corner"):
        draw_label(background(), "middle")


@requires_models
def test_progress_exception_cancels_and_cleans_up(swapper: FaceSwapper, clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "cancelled.mp4"

    def cancel(fraction: float) -> None:
        if fraction > 0.2:
            raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):
        swap_video(swapper, clip, out, SwapOptions(), progress=cancel)
    assert list(tmp_path.iterdir()) == []


@requires_models
def test_no_face_frames_pass_through_the_swap_unchanged(swapper: FaceSwapper, clip: Path) -> None:
    track = swapper.new_track(SwapOptions())
    frames = list(read_frames(clip))
    for frame in frames:
        out, count = swapper.swap_frame(frame, track)
    for frame in frames[-6:]:
        out, count = swapper.swap_frame(frame, track)
        assert count == 0 and out.tobytes() == frame.tobytes()


@pytest.mark.parametrize("where", ["decode", "encode"])
def test_a_failing_stage_stops_the_pipeline_and_cleans_up(swapper: FaceSwapper, clip: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """The decode and the label/mark/encode stages run in their own threads: an error in either reaches the
    caller as itself, the partial output is removed and no thread is left behind."""
    import threading

    from genstudio.faceswap import pipeline

    class Broken(RuntimeError):
        pass

    if where == "decode":
        real = pipeline.read_frames

        def frames(path: Path):  # noqa: ANN202
            for i, frame in enumerate(real(path)):
                if i == 3:
                    raise Broken("the decoder died")
                yield frame

        monkeypatch.setattr(pipeline, "read_frames", frames)
    else:
        calls = {"n": 0}

        def embed(self, frame):  # noqa: ANN001, ANN202
            calls["n"] += 1
            if calls["n"] == 3:
                raise Broken("the mark failed")
            return frame

        monkeypatch.setattr(pipeline.FrameMarker, "embed", embed)
    before = threading.active_count()
    out = tmp_path / "out.mp4"
    with pytest.raises(Broken):
        swap_video(swapper, clip, out, SwapOptions())
    assert not out.exists() and not list(tmp_path.glob("*.part.mp4"))
    assert threading.active_count() == before
