"""An inaudible watermark for rendered audio that survives MP3 / AAC at 128 kbit/s and a +-5% resample.

The same idea as the image mark (`syncmark`), on a spectrogram: the gain of 24 frequency bands between
500 Hz and 5 kHz is raised or lowered by a fraction of a decibel, cell by cell, following a pattern that
repeats every PERIOD frames of 23 ms. Each cell carries a known synchronisation sign and one payload bit's
sign times a key sign. Only energy that is there is scaled (silence stays silent), and the gains change
smoothly (the overlap-add of the resynthesis), so it is not heard as noise.

Reading: the log band energies, their slow trend removed in time and their mean removed across bands, are
folded onto one period (every period adds up), and the synchronisation pattern is found over every cyclic
shift in time. A resample by s stretches time and frequency alike, so the reader tries stretch factors in
0.94..1.06, resampling the audio back before the spectrogram. Payload: the same 64 bits as the image mark
(a 48-bit id and a CRC-16, soft-decision decoding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genstudio.provenance.syncmark import PAYLOAD_BITS, decode_bits, payload_bits

METHOD = "audiomark"
SOFT_BINDING_ALG = "org.genstudio.audiomark.1"
N_FFT, HOP = 2048, 1024
BANDS = 40
LOW_HZ, HIGH_HZ = 300.0, 8000.0
PERIOD = 32  # frames (about 0.74 s at 44.1 kHz)
DEPTH_DB = 1.0  # peak gain change of a cell
SYNC_SHARE = 0.2
FOUND_Z = 6.0
MIN_SECONDS = 3.0
STRETCHES = np.arange(0.94, 1.0601, 0.002)

_KEY = 0x61756469  # "audi"


def _patterns() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(_KEY)
    sync = rng.choice([-1.0, 1.0], size=(PERIOD, BANDS))
    owner = rng.permutation(PERIOD * BANDS).reshape(PERIOD, BANDS) % PAYLOAD_BITS
    sign = rng.choice([-1.0, 1.0], size=(PERIOD, BANDS))
    return sync, owner, sign


_SYNC, _OWNER, _SIGN = _patterns()
_SYNC_FFT_CONJ = np.conj(np.fft.fft(_SYNC - _SYNC.mean(), axis=0))
_WINDOW = np.sqrt(np.hanning(N_FFT + 1)[:-1])  # sqrt-Hann at 50% overlap: analysis x synthesis sums to 1


def _edges(sr: int) -> np.ndarray:
    hz = np.linspace(LOW_HZ, HIGH_HZ, BANDS + 1)
    return np.clip(np.round(hz / sr * N_FFT).astype(int), 1, N_FFT // 2)


def _stft(x: np.ndarray) -> np.ndarray:
    frames = 1 + max(0, (len(x) - N_FFT) // HOP)
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(frames)[:, None]
    return np.fft.rfft(x[idx] * _WINDOW, axis=1)


def _istft(spec: np.ndarray, length: int) -> np.ndarray:
    out = np.zeros(length)
    frames = np.fft.irfft(spec, n=N_FFT, axis=1) * _WINDOW
    for i, frame in enumerate(frames):
        out[i * HOP:i * HOP + N_FFT] += frame[: max(0, min(N_FFT, length - i * HOP))]
    return out


def can_mark(samples: int, sr: int) -> bool:
    return samples >= MIN_SECONDS * sr


def embed(audio: np.ndarray, sr: int, ident: bytes) -> np.ndarray:
    """`audio` (samples x channels, or samples; float in -1..1) carrying `ident` (6 bytes)."""
    mono = audio.ndim == 1
    x = audio[:, None] if mono else audio
    if not can_mark(len(x), sr):
        raise ValueError(f"{len(x) / sr:.1f} s of audio is too short for the watermark (needs {MIN_SECONDS} s)")
    bits = payload_bits(ident)
    cells = np.sqrt(SYNC_SHARE) * _SYNC + np.sqrt(1 - SYNC_SHARE) * np.where(bits[_OWNER], 1.0, -1.0) * _SIGN
    edges = _edges(sr)
    out = np.empty_like(x, dtype=np.float64)
    for ch in range(x.shape[1]):
        signal = x[:, ch].astype(np.float64)
        spec = _stft(signal)
        frames = spec.shape[0]
        pattern = np.tile(cells, (frames // PERIOD + 1, 1))[:frames]
        gain = np.ones((frames, N_FFT // 2 + 1))
        for b in range(BANDS):
            gain[:, edges[b]:edges[b + 1]] = 10 ** (DEPTH_DB * pattern[:, b:b + 1] / 20)
        changed = _istft(spec * gain, len(signal))
        # Only the part the frames cover is changed; the tail (under one hop) is kept as it was.
        covered = (frames - 1) * HOP + N_FFT
        out[:, ch] = signal
        out[:covered, ch] = changed[:covered]
    return out[:, 0] if mono else out


def _band_log_energy(x: np.ndarray, sr: int) -> np.ndarray:
    power = np.abs(_stft(x)) ** 2
    edges = _edges(sr)
    energy = np.stack([power[:, edges[b]:edges[b + 1]].sum(axis=1) for b in range(BANDS)], axis=1)
    frame_mean = energy.mean(axis=1, keepdims=True)
    log = np.log(energy + 1e-6 * (frame_mean.max() + 1e-12))
    # The music's own movement: its slow trend in time, and the spectrum's shape in each frame.
    kernel = np.ones(7) / 7
    trend = np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="same"), 0, log)
    resid = log - trend
    resid -= resid.mean(axis=1, keepdims=True)
    limit = 3.0 * float(np.mean(np.abs(resid))) + 1e-6
    resid = np.clip(resid, -limit, limit)
    # A band with (almost) nothing in it holds no mark, only noise; quiet frames likewise.
    band_weight = np.clip(energy / (0.05 * frame_mean + 1e-12), 0.0, 1.0)
    frame_weight = np.clip(frame_mean / (np.median(frame_mean) + 1e-12), 0.0, 1.0)
    return resid * band_weight * frame_weight


@dataclass
class AudioReading:
    found: bool
    ident: bytes | None
    bits: np.ndarray
    z: float
    stretch: float
    corrected: int = 0

    @property
    def confidence(self) -> float:
        return float(1 / (1 + np.exp(-(self.z - FOUND_Z))))


def _read_at(x: np.ndarray, sr: int) -> tuple[float, np.ndarray]:
    resid = _band_log_energy(x, sr)
    periods = len(resid) // PERIOD
    if periods < 1:
        return 0.0, np.zeros(PAYLOAD_BITS)
    folded = resid[: periods * PERIOD].reshape(periods, PERIOD, BANDS).sum(axis=0)
    folded = folded - folded.mean(axis=0, keepdims=True)
    corr = np.real(np.fft.ifft(np.fft.fft(folded, axis=0) * _SYNC_FFT_CONJ, axis=0)).sum(axis=1)
    shift = int(np.argmax(corr))
    # Without a mark, the correlation with the +-1 pattern at any shift has a standard deviation of
    # sqrt(sum of squares): the peak in those units.
    z = float(corr[shift] / (np.sqrt(np.sum(folded * folded)) + 1e-9))
    aligned = np.roll(folded, -shift, axis=0)
    soft = np.bincount(_OWNER.ravel(), weights=(aligned * _SIGN).ravel(), minlength=PAYLOAD_BITS)
    return z, soft


def read(audio: np.ndarray, sr: int, *, search: bool = True) -> AudioReading:
    """Look for the mark in `audio` (samples x channels or samples), at stretches 0.94..1.06 (`search`
    False: as it is only, the embedder's own check)."""
    x = audio.mean(axis=1) if audio.ndim == 2 else audio
    x = x.astype(np.float64)
    none = AudioReading(False, None, np.zeros(PAYLOAD_BITS, bool), 0.0, 1.0)
    if len(x) < 2 * PERIOD * HOP:
        return none
    best_z, best_soft, best_s = 0.0, np.zeros(PAYLOAD_BITS), 1.0
    positions = np.arange(len(x))
    # Nearest first: most copies are not resampled at all.
    for s in sorted(STRETCHES, key=lambda v: abs(v - 1.0)) if search else [1.0]:
        # A copy resampled by s has every event at s times its place: read it back at 1 / s.
        y = x if abs(s - 1.0) < 1e-9 else np.interp(np.arange(0, len(x) - 1, s), positions, x)
        z, soft = _read_at(y, sr)
        if z > best_z:
            best_z, best_soft, best_s = z, soft, float(s)
        if best_z >= FOUND_Z + 4:
            break
    ident, bits, corrected = decode_bits(best_soft)
    return AudioReading(best_z >= FOUND_Z and ident is not None, ident, bits, best_z, best_s, corrected)
