"""Video in and out through imageio-ffmpeg's bundled ffmpeg: probe, decode to BGR frames, encode H.264 MP4 with
the original audio track."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import imageio_ffmpeg
import numpy as np

_MP4_AUDIO = {"aac", "mp3", "alac"}


@dataclass
class VideoInfo:
    width: int
    height: int
    fps: float
    frames: int
    duration_s: float
    has_audio: bool
    codec: str
    audio_codec: str | None = None


def frame_rate(fps: float) -> Fraction:
    """The exact rate behind a printed one: 29.97 -> 30000/1001 (NTSC rates), 25.0 -> 25."""
    ntsc = round(fps * 1.001)
    if abs(fps - ntsc / 1.001) < 0.006 and abs(fps - round(fps)) > 0.006:
        return Fraction(ntsc * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def probe(path: Path) -> VideoInfo:
    """Stream facts of a video file (frame count by demuxing, no decode). ValueError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path.name}: no such file")
    # Demux the video stream without decoding: the header gives the streams, the final stats the frame count.
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy",
                           "-f", "null", "-"], capture_output=True, text=True, errors="replace", timeout=120)
    log = proc.stderr
    container = re.search(r"Input #0, ([\w,]+), from", log)
    video = re.search(r"Stream #0:\d+.*?: Video: (\w+)([^\n]*)", log)
    if proc.returncode != 0 or container is None or video is None:
        raise ValueError(f"{path.name}: not a readable video (ffmpeg found no video stream)")
    if "image2" in container.group(1) or container.group(1).endswith("_pipe"):
        raise ValueError(f"{path.name}: is a still image ({container.group(1)}), not a video")
    size = re.search(r"\b(\d{2,5})x(\d{2,5})\b", video.group(2))
    rate = re.search(r"([\d.]+) fps", video.group(2)) or re.search(r"([\d.]+) tbr", video.group(2))
    if size is None or rate is None:
        raise ValueError(f"{path.name}: video stream without a frame size or rate")
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", log)
    seconds = 0.0
    if duration:
        seconds = int(duration.group(1)) * 3600 + int(duration.group(2)) * 60 + float(duration.group(3))
    frames = re.findall(r"frame=\s*(\d+)", log)
    audio = re.search(r"Stream #0:\d+.*?: Audio: (\w+)", log)
    fps = float(rate.group(1))
    count = int(frames[-1]) if frames else round(seconds * fps)
    if count < 1:
        raise ValueError(f"{path.name}: video has no frames")
    width, height = int(size.group(1)), int(size.group(2))
    # ffmpeg (and so read_frames) applies a display-matrix rotation: report the size frames come out at.
    rotation = re.search(r"rotation of (-?[\d.]+) degrees", log)
    if rotation and round(abs(float(rotation.group(1)))) % 180 == 90:
        width, height = height, width
    return VideoInfo(width=width, height=height, fps=fps, frames=count,
                     duration_s=seconds or count / fps, has_audio=audio is not None, codec=video.group(1),
                     audio_codec=audio.group(1) if audio else None)


def read_frames(path: Path) -> Iterator[np.ndarray]:
    """Decoded frames as HxWx3 uint8 BGR arrays."""
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="bgr24")
    try:
        meta = next(reader)
        width, height = meta["size"]
        for raw in reader:
            yield np.frombuffer(raw, np.uint8).reshape(height, width, 3)
    finally:
        reader.close()


class VideoWriter:
    """H.264 (libx264, yuv420p) MP4 with +faststart at a given fps, audio copied from `audio_from` when it has
    any (re-encoded to AAC when its codec cannot go into MP4). Writes to a temporary name in the same folder and
    renames it into place when the block exits cleanly; on an exception the partial file is removed."""

    def __init__(self, path: Path, width: int, height: int, fps: float, audio_from: Path | None = None,
                 crf: int = 20, preset: str = "veryfast", x264_params: str | None = None) -> None:
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be in 0..51, got {crf}")
        if width < 2 or height < 2 or fps <= 0:
            raise ValueError(f"bad video geometry {width}x{height} at {fps} fps")
        self.path, self.width, self.height = Path(path), width, height
        self.frames = 0
        self._tmp = self.path.with_name(f".{self.path.stem}.{uuid.uuid4().hex[:8]}.part.mp4")
        rate = frame_rate(fps)
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-framerate", str(rate), "-i", "-"]
        audio_codec = None
        if audio_from is not None:
            info = probe_audio(Path(audio_from))
            if info is not None:
                audio_codec = "copy" if info in _MP4_AUDIO else "aac"
                cmd += ["-i", str(audio_from)]
        cmd += ["-map", "0:v:0"]
        if audio_codec:
            cmd += ["-map", "1:a:0", "-c:a", audio_codec]
            if audio_codec == "aac":
                cmd += ["-b:a", "160k"]
        # yuv420p needs even sides.
        cmd += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", preset, "-crf", str(crf)]
        if x264_params:
            cmd += ["-x264-params", x264_params]
        cmd += ["-pix_fmt", "yuv420p", "-r", str(rate), "-movflags", "+faststart", str(self._tmp)]
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)

    def write(self, frame_bgr: np.ndarray) -> None:
        if frame_bgr.shape != (self.height, self.width, 3) or frame_bgr.dtype != np.uint8:
            raise ValueError(f"frame {frame_bgr.shape} {frame_bgr.dtype} does not match the writer's "
                             f"{self.height}x{self.width}x3 uint8")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame_bgr).data)
        except BrokenPipeError as exc:
            raise RuntimeError(f"ffmpeg stopped: {self._error()}") from exc
        self.frames += 1

    def _error(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()[-2000:]

    def close(self) -> None:
        """Finish the file and move it into place."""
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        code = self._proc.wait()
        if code != 0 or self.frames == 0:
            message = self._error() or "no frames written"
            self.abort()
            raise RuntimeError(f"ffmpeg failed writing {self.path.name}: {message}")
        os.replace(self._tmp, self.path)
        self._log.close()

    def abort(self) -> None:
        """Stop ffmpeg and remove the partial file."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdin and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
        self._tmp.unlink(missing_ok=True)
        self._log.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def probe_audio(path: Path) -> str | None:
    """The codec of the first audio stream of `path`, or None when it has none."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True,
                          text=True, errors="replace", timeout=60)
    audio = re.search(r"Stream #0:\d+.*?: Audio: (\w+)", proc.stderr)
    return audio.group(1) if audio else None


def read_key_frames_luma(path: Path, width: int, height: int, limit: int = 4) -> Iterator[np.ndarray]:
    """The luminance (float32 HxW) of the first `limit` key frames (intra-coded: what a re-encode keeps best),
    decoded without the frames between them. `width` x `height` as `probe` reports them."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-skip_frame", "nokey", "-i", str(path),
           "-map", "0:v:0", "-fps_mode", "passthrough", "-frames:v", str(limit), "-f", "rawvideo", "-pix_fmt",
           "gray", "-"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    size = width * height
    try:
        assert proc.stdout is not None
        for _ in range(limit):
            raw = proc.stdout.read(size)
            if len(raw) < size:
                break
            yield np.frombuffer(raw, np.uint8).reshape(height, width).astype(np.float32)
    finally:
        proc.kill()
        proc.wait()
