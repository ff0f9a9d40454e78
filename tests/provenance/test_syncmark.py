"""The resynchronising watermark against the copies files really go through: scaling 0.5x-2x, crops of 25%
from any side, a frame inside a larger screenshot, JPEG quality 50, x264 crf 28, brightness and contrast;
at least 40 dB PSNR; unmarked pictures never read as marked; and credentials that come back through the
mark (C2PA soft binding) from the API and the CLI."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from genstudio.provenance import syncmark

IDENT = bytes.fromhex("0badc0ffee42")
TRUTH = syncmark.payload_bits(IDENT)


def pictures() -> dict[str, np.ndarray]:
    """Public-domain photos shipped with scikit-image (NASA's astronaut, a cat, a coffee cup) at 640x480."""
    from skimage import data

    return {name: cv2.resize(getattr(data, name)(), (640, 480), interpolation=cv2.INTER_AREA)
            for name in ("astronaut", "chelsea", "coffee")}


@pytest.fixture(scope="module")
def marked() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {name: (rgb, syncmark.embed(rgb, IDENT)) for name, rgb in pictures().items()}


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def scale(rgb: np.ndarray, f: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)


def screenshot(rgb: np.ndarray) -> np.ndarray:
    """The picture at an odd offset inside a larger, mostly flat window (a screenshot of a viewer)."""
    h, w = rgb.shape[:2]
    shot = np.full((h + 333, w + 517, 3), 238, np.uint8)
    shot[:40] = (40, 44, 52)  # a title bar
    shot[171:171 + h, 263:263 + w] = rgb
    return shot


ATTACKS = {
    "none": lambda x: x,
    "scale 0.5": lambda x: scale(x, 0.5),
    "scale 0.75": lambda x: scale(x, 0.75),
    "scale 1.33": lambda x: scale(x, 1.33),
    "scale 2": lambda x: scale(x, 2.0),
    "crop 25% left": lambda x: x[:, x.shape[1] // 4:],
    "crop 25% right": lambda x: x[:, : x.shape[1] * 3 // 4],
    "crop 25% top": lambda x: x[x.shape[0] // 4:],
    "crop 25% bottom+left": lambda x: x[: x.shape[0] * 3 // 4, x.shape[1] // 4:],
    "screenshot": screenshot,
    "jpeg 50": lambda x: jpeg(x, 50),
    "brightness +25": lambda x: np.clip(x.astype(int) + 25, 0, 255).astype(np.uint8),
    "contrast 0.75": lambda x: np.clip((x.astype(float) - 128) * 0.75 + 128, 0, 255).astype(np.uint8),
    "scale 0.75 + jpeg 70": lambda x: jpeg(scale(x, 0.75), 70),
}


def bit_errors(reading: syncmark.Reading) -> int:
    return int(np.count_nonzero(reading.bits != TRUTH))


def test_embedding_costs_at_most_about_a_40_db_change(marked: dict) -> None:
    for name, (rgb, out) in marked.items():
        mse = np.mean((rgb.astype(float) - out.astype(float)) ** 2)
        assert 10 * np.log10(255**2 / mse) >= 40.0, name


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_the_mark_survives(attack: str, marked: dict) -> None:
    for name, (_rgb, out) in marked.items():
        reading = syncmark.read(ATTACKS[attack](out))
        assert reading.found and reading.ident == IDENT, (name, attack, reading.z, bit_errors(reading))
        assert bit_errors(reading) == 0  # after the decoder's correction
        assert reading.corrected <= 0.1 * syncmark.PAYLOAD_BITS


def test_unmarked_pictures_are_not_found(marked: dict) -> None:
    for name, (rgb, _out) in marked.items():
        for attack in ("none", "scale 0.5", "screenshot", "jpeg 50"):
            reading = syncmark.read(ATTACKS[attack](rgb))
            assert not reading.found and reading.z < syncmark.FOUND_Z, (name, attack, reading.z)
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert not syncmark.read(noise).found
    assert not syncmark.read(np.full((300, 300, 3), 128, np.uint8)).found


def test_x264_crf_28_video_frames(tmp_path: Path) -> None:
    """Frames marked (a slow pan), encoded with x264 at crf 28 (what sharing sites do), decoded: the key
    frame reads. (x264's predicted frames keep too little of the mark at crf 28, even 8 of them averaged:
    the limit is measured in bench/run_watermark_bench.py and written in docs/provenance.md.)"""
    from genstudio.faceswap.media import ffmpeg_exe

    frames = [syncmark.embed(np.roll(pictures()["astronaut"], 2 * i, axis=1), IDENT) for i in range(12)]
    clip = tmp_path / "clip.mp4"
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", "640x480", "-r", "25", "-i", "-", "-c:v", "libx264", "-crf", "28", "-pix_fmt", "yuv420p", str(clip)]
    subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True, timeout=120)
    decoded = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(clip), "-f", "rawvideo",
                              "-pix_fmt", "rgb24", "-"], capture_output=True, check=True, timeout=120).stdout
    video = np.frombuffer(decoded, np.uint8).reshape(-1, 480, 640, 3)
    first = syncmark.read(video[0])
    assert first.found and first.ident == IDENT, first.z


def test_small_and_flat_pictures(marked: dict) -> None:
    with pytest.raises(ValueError, match="too small"):
        syncmark.embed(np.zeros((64, 64, 3), np.uint8), IDENT)
    flat = syncmark.embed(np.full((256, 256, 3), 128, np.uint8), IDENT)
    assert np.abs(flat.astype(int) - 128).max() <= 3  # flat areas get little: the mark is weak there


# ---- credentials that come back ------------------------------------------------------------------------------

def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def test_a_copy_without_its_manifest_gets_its_credentials_back(client, tmp_path: Path) -> None:  # noqa: ANN001
    """An image made by the studio, re-encoded as a smaller JPEG (the manifest is gone), is verified through
    the API: the watermark names the manifest the studio signed, which comes back marked as recovered. A
    file never marked answers "unknown", not "no"."""
    from helpers import wait_job

    r = client.post("/api/images", json={"prompt": "a red heart", "model": "builtin:emoji-tiny", "steps": 8,
                                         "seed": 4})
    job = wait_job(client, r.json()["job_id"], timeout=120)
    assert job["status"] == "succeeded", job["error"]
    original = client.get(f"/api/assets/{job['assets'][0]}").content
    first = client.post("/api/verify", files={"file": ("a.png", original, "image/png")}).json()
    assert first["manifest"]["valid"] and not first["manifest"].get("recovered")
    payload = first["watermark"]["payload"]
    copy = jpeg(scale(np.asarray(Image.open(io.BytesIO(original)).convert("RGB")), 0.75), 80)
    data = io.BytesIO()
    Image.fromarray(copy).save(data, "JPEG", quality=80)
    report = client.post("/api/verify", files={"file": ("copy.jpg", data.getvalue(), "image/jpeg")}).json()
    assert report["watermark"]["found"] and report["watermark"]["payload"] == payload
    assert report["manifest"]["recovered"] is True and report["manifest"]["valid"]
    assert report["manifest"]["assertions"]["org.genstudio.generation"]["seed"] == 4
    assert report["ai_generated"] is True
    unmarked = client.post("/api/verify", files={"file": ("p.png", _png(pictures()["coffee"]), "image/png")}).json()
    assert unmarked["ai_generated"] == "unknown" and unmarked["manifest"]["found"] is False

    # The CLI reads the same store (the server's data dir).
    path = tmp_path / "copy.jpg"
    path.write_bytes(data.getvalue())
    env = {**os.environ, "GENSTUDIO_DATA_DIR": str(client.app.state.genstudio.settings.data_dir)}
    done = subprocess.run([sys.executable, "-m", "genstudio.cli", "verify", str(path)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    cli = json.loads(done.stdout)
    assert cli["manifest"]["recovered"] is True and cli["ai_generated"] is True
