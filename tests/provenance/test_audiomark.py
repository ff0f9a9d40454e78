"""The audio watermark on melodies rendered by FluidSynth: found after MP3 and AAC at 128 kbit/s, a +-5%
resample and a trimmed start; not found in unmarked audio; a melody's WAV is marked by the provenance stage,
and an MP3 copy of it gets its credentials back (soft binding) through the API."""

from __future__ import annotations

import io
import subprocess
import wave

import numpy as np
import pytest

from genstudio.provenance import audiomark

IDENT = bytes.fromhex("a0d10a0d10a0")


def melody_midi(seed: int, bars: int = 8) -> bytes:
    import mido

    rng = np.random.default_rng(seed)
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.Message("program_change", program=int(rng.integers(0, 80)), time=0))
    for _ in range(bars * 4):
        note = 60 + [0, 2, 4, 5, 7, 9, 11, 12][int(rng.integers(0, 8))]
        track.append(mido.Message("note_on", note=note, velocity=90, time=0))
        track.append(mido.Message("note_off", note=note, velocity=0, time=int(rng.choice([240, 480, 960]))))
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def samples(wav: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(wav)) as w:
        rate, channels = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, channels)
    return pcm.astype(np.float64) / 32768.0, rate


def codec(x: np.ndarray, rate: int, args: list[str], fmt: str) -> np.ndarray:
    from genstudio.faceswap.media import ffmpeg_exe

    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
    channels = ["-ac", str(x.shape[1])]
    encoded = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "s16le", "-ar", str(rate),
                              *channels, "-i", "-", *args, "-f", fmt, "-"], input=pcm, capture_output=True,
                             check=True, timeout=60).stdout
    decoded = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", "-", "-f", "s16le", "-ar",
                              str(rate), *channels, "-"], input=encoded, capture_output=True, check=True,
                             timeout=60).stdout
    return np.frombuffer(decoded, "<i2").reshape(-1, x.shape[1]).astype(np.float64) / 32768.0


def resample(x: np.ndarray, factor: float) -> np.ndarray:
    """Played `factor` times slower (every event at `factor` times its place), at the same sample rate."""
    pos = np.arange(0, len(x) - 1, 1 / factor)
    return np.stack([np.interp(pos, np.arange(len(x)), x[:, c]) for c in range(x.shape[1])], axis=1)


@pytest.fixture(scope="module")
def rendered() -> list[tuple[np.ndarray, np.ndarray, int]]:
    from genstudio.music.render import wav_bytes

    out = []
    for seed in (0, 1):
        x, rate = samples(wav_bytes(melody_midi(seed)))
        out.append((x, audiomark.embed(x, rate, IDENT), rate))
    return out


ATTACKS = {
    "none": lambda x, r: x,
    "mp3 128k": lambda x, r: codec(x, r, ["-c:a", "libmp3lame", "-b:a", "128k"], "mp3"),
    "aac 128k": lambda x, r: codec(x, r, ["-c:a", "aac", "-b:a", "128k"], "adts"),
    "resample +5%": lambda x, r: resample(x, 1.05),
    "resample -5%": lambda x, r: resample(x, 0.95),
    "trimmed 1.3 s": lambda x, r: x[int(1.3 * r):],
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_the_audio_mark_survives(attack: str, rendered: list) -> None:
    for x, marked, rate in rendered:
        snr = 10 * np.log10(np.sum(x**2) / np.sum((marked - x) ** 2))
        assert snr >= 18.0
        reading = audiomark.read(ATTACKS[attack](marked, rate), rate)
        assert reading.found and reading.ident == IDENT, (attack, reading.z, reading.corrected)
        if "resample" in attack:
            assert abs(reading.stretch - (1.05 if "+" in attack else 0.95)) < 0.005


def test_unmarked_audio_is_not_found(rendered: list) -> None:
    for x, _marked, rate in rendered:
        for attack in ("none", "mp3 128k"):
            assert not audiomark.read(ATTACKS[attack](x, rate), rate).found
    with pytest.raises(ValueError, match="too short"):
        audiomark.embed(np.zeros((44100, 2)), 44100, IDENT)


def test_melody_wav_is_marked_and_an_mp3_copy_recovers_its_credentials(client) -> None:  # noqa: ANN001
    from helpers import wait_job

    r = client.post("/api/music/sample", json={"n": 1, "bars": 8, "seed": 3, "tempo": 100})
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["job_id"], timeout=120)
    assert job["status"] == "succeeded", job["error"]
    wav = client.get(f"/api/assets/{job['assets'][0]}?format=wav")
    assert wav.status_code == 200, wav.text
    report = client.post("/api/verify", files={"file": ("m.wav", wav.content, "audio/wav")}).json()
    assert report["watermark"]["found"] and report["watermark"]["method"] == "audiomark"
    assert report["manifest"]["valid"] and not report["manifest"].get("recovered")
    record = report["manifest"]["assertions"]["org.genstudio.watermark"]
    assert record["embedded"] and record["readable"] and record["snr_db"] >= 18
    assert report["manifest"]["assertions"]["c2pa.soft-binding"]["alg"] == audiomark.SOFT_BINDING_ALG
    x, rate = samples(wav.content)
    mp3 = io.BytesIO()
    from genstudio.faceswap.media import ffmpeg_exe

    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
    mp3_bytes = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "s16le", "-ar", str(rate),
                                "-ac", str(x.shape[1]), "-i", "-", "-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3",
                                "-"], input=pcm, capture_output=True, check=True, timeout=60).stdout
    mp3.write(mp3_bytes)
    copy = client.post("/api/verify", files={"file": ("m.mp3", mp3.getvalue(), "audio/mpeg")}).json()
    assert copy["format"] == "mp3" and copy["watermark"]["found"]
    assert copy["watermark"]["payload"] == report["watermark"]["payload"]
    assert copy["manifest"]["recovered"] is True and copy["ai_generated"] is True
