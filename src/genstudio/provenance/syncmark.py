"""A watermark that finds itself again after scaling, cropping, offsets, recompression and level changes.

Classical design, chosen because it needs no training data and its behaviour can be reasoned about:

- **A periodic spread-spectrum tile.** The luminance carries a pattern that repeats every TILE pixels in both
  directions. Each tile is a grid of CHIP x CHIP-pixel chips; every chip carries a known synchronisation
  sign, and the chips of one payload bit (PAYLOAD_BITS bits, CHIPS_PER_BIT chips each, spread over the tile
  by a fixed key) also carry that bit's sign. The pattern is scaled by local picture activity (less in flat
  areas) so that the PSNR stays at or above TARGET_PSNR dB.
- **Resynchronisation.** Because the pattern is periodic, a crop or an offset (a frame pasted into a larger
  screenshot) is only a cyclic shift of the tile, and scaling only changes the period. The reader whitens
  the picture's spectrum, takes the autocorrelation (peaks at the period, whatever the content), estimates
  the scale from it, resamples to the original period, folds the whole picture onto one tile (every tile
  adds up: the mark grows with the area, the picture does not), and finds the shift by correlating the
  folded tile with the synchronisation pattern over every cyclic shift (one FFT).
- **Payload with a check.** 48 bits that identify the output (the first bytes of its manifest's id hash) and a
  CRC-16: a read is accepted only when the synchronisation peak stands out (z-score) and the CRC holds.

Why not a learned encoder/decoder (TrustMark, StegaStamp): they need hours of GPU training on a licensed
image set and their weights are not ours to ship; this design reaches the asked robustness on CPU in
milliseconds, and its failure modes (rotation, heavy non-uniform warps) are known. See docs/provenance.md.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import cv2
import numpy as np

METHOD = "syncmark"  # the name in reports and manifests
SOFT_BINDING_ALG = "org.genstudio.syncmark.1"  # the soft-binding algorithm name declared in manifests
TILE = 128  # pixels per period at scale 1
CHIP = 4  # pixels per chip side
GRID = TILE // CHIP  # chips per tile side (32)
PAYLOAD_BITS = 64  # 48-bit id + 16-bit CRC
ID_BITS = 48
CHIPS_PER_BIT = GRID * GRID // PAYLOAD_BITS  # 16
TARGET_PSNR = 41.5  # dB on the luminance, before rounding to 8 bits
SYNC_SHARE = 0.2  # of the mark's energy spent on synchronisation
MIN_SIDE = 96  # smaller pictures carry too few chips to read back
FOUND_Z = 8.0  # synchronisation peak, in standard deviations of the correlation surface
SCALES = (0.45, 2.2)  # the range of scales the reader searches

_KEY = 0x67656E73  # "gens": a fixed key, so every genstudio reader reads every genstudio mark


def _patterns() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(_KEY)
    sync = rng.choice([-1.0, 1.0], size=(GRID, GRID))
    owner = rng.permutation(GRID * GRID).reshape(GRID, GRID) % PAYLOAD_BITS  # which bit each chip carries
    sign = rng.choice([-1.0, 1.0], size=(GRID, GRID))  # the key's sign per chip
    return sync, owner, sign


_SYNC, _OWNER, _SIGN = _patterns()
_SYNC_TILE = np.kron(_SYNC, np.ones((CHIP, CHIP)))
_SYNC_FFT_CONJ = np.conj(np.fft.fft2(_SYNC_TILE - _SYNC_TILE.mean()))


def payload_bits(ident: bytes) -> np.ndarray:
    """The 64 bits carried for a 6-byte id: the id, then its CRC-16 (the low half of a CRC-32)."""
    ident = bytes(ident[: ID_BITS // 8]).ljust(ID_BITS // 8, b"\0")
    crc = (zlib.crc32(ident) & 0xFFFF).to_bytes(2, "big")
    return np.unpackbits(np.frombuffer(ident + crc, np.uint8)).astype(bool)


def bits_to_id(bits: np.ndarray) -> bytes | None:
    """The id if the CRC holds, else None."""
    raw = np.packbits(np.asarray(bits, bool)).tobytes()
    ident, crc = raw[: ID_BITS // 8], raw[ID_BITS // 8:]
    return ident if (zlib.crc32(ident) & 0xFFFF).to_bytes(2, "big") == crc else None


def _tile(bits: np.ndarray) -> np.ndarray:
    """One period of the mark, unit power: sync on every chip plus each chip's bit sign."""
    data = np.where(bits[_OWNER], 1.0, -1.0) * _SIGN
    chips = np.sqrt(SYNC_SHARE) * _SYNC + np.sqrt(1 - SYNC_SHARE) * data
    return np.kron(chips, np.ones((CHIP, CHIP)))


def _activity(y: np.ndarray) -> np.ndarray:
    """Local texture (standard deviation over about a chip's neighbourhood), for perceptual weighting."""
    mean = cv2.blur(y, (9, 9))
    var = np.maximum(cv2.blur(y * y, (9, 9)) - mean * mean, 0.0)
    return np.sqrt(var)


def can_mark(width: int, height: int) -> bool:
    return min(width, height) >= MIN_SIDE


def mark_field(ident: bytes, height: int, width: int) -> np.ndarray:
    """The unshaped mark for a `height` x `width` picture (float32, unit power): the tile repeated from (0, 0)."""
    tile = _tile(payload_bits(ident)).astype(np.float32)
    return np.tile(tile, (height // TILE + 1, width // TILE + 1))[:height, :width]


def shaped(y: np.ndarray, field: np.ndarray, psnr: float = TARGET_PSNR) -> np.ndarray:
    """The luminance change that carries `field` in the picture whose luminance is `y` (float32): stronger
    where the picture is busy, weaker in flat areas and at the clipping ends of the range, scaled to about
    `psnr` dB."""
    weight = np.clip(_activity(y) / 6.0, 0.35, 2.5)
    weight *= np.clip(np.minimum(y, 255.0 - y) / 12.0, 0.0, 1.0)
    delta = field * weight
    target_rms = 255.0 / 10 ** (psnr / 20)
    delta *= target_rms / max(float(np.sqrt(np.mean(delta * delta))), 1e-6)
    return delta


def embed(rgb: np.ndarray, ident: bytes, psnr: float = TARGET_PSNR) -> np.ndarray:
    """A copy of `rgb` (HxWx3 uint8) carrying `ident` (6 bytes), at about `psnr` dB on the luminance."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 image, got shape {rgb.shape} dtype {rgb.dtype}")
    h, w = rgb.shape[:2]
    if not can_mark(w, h):
        raise ValueError(f"image {w}x{h} is too small for the watermark (needs {MIN_SIDE} px a side)")
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    ycc[..., 0] += shaped(ycc[..., 0], mark_field(ident, h, w), psnr)
    return cv2.cvtColor(np.clip(ycc, 0, 255).round().astype(np.uint8), cv2.COLOR_YCrCb2RGB)


@dataclass
class Reading:
    found: bool
    ident: bytes | None  # the 6-byte id when the CRC holds
    bits: np.ndarray  # the 64 bits read (whatever they are)
    z: float  # synchronisation peak in standard deviations
    scale: float  # the scale the picture was found at (1 = as marked)
    shift: tuple[int, int]  # where the tile starts (x, y) in the resampled picture
    corrected: int = 0  # bits the decoder flipped to make the CRC hold (the bit errors, when found)

    @property
    def confidence(self) -> float:
        """0..1 from the synchronisation z-score: 0.5 at the acceptance threshold."""
        return float(1 / (1 + np.exp(-(self.z - FOUND_Z))))


HIGH_PASS_SIGMA = 0.8  # px: the residual keeps the chips' edges and little of the picture's content


def _whitened(y: np.ndarray) -> np.ndarray:
    """The picture's fine detail (a high-pass residual): the mark lives there, most of the content does not.
    Strong edges (a window's border in a screenshot, a title bar) are clipped: long straight edges would
    otherwise add up coherently when the picture is folded onto one period."""
    resid = cv2.GaussianBlur(y, (0, 0), HIGH_PASS_SIGMA)
    np.subtract(y, resid, out=resid)  # in place: big pictures are read at up to 2.2x their size
    limit = 3.0 * float(cv2.norm(resid, cv2.NORM_L1)) / max(resid.size, 1) + 1.0
    return np.clip(resid, -limit, limit, out=resid)


def _high_pass_gain() -> np.ndarray:
    fy, fx = np.fft.fftfreq(TILE)[:, None], np.fft.fftfreq(TILE)[None, :]
    return 1 - np.exp(-2 * (np.pi * HIGH_PASS_SIGMA) ** 2 * (fx * fx + fy * fy))


_HIGH_PASS = _high_pass_gain()


def _fold(resid: np.ndarray) -> np.ndarray:
    """`resid` (at scale 1) summed onto one TILE x TILE period (whole periods; at least one, zero-padded)."""
    h, w = resid.shape
    hh, ww = max(h // TILE, 1) * TILE, max(w // TILE, 1) * TILE
    if h >= TILE and w >= TILE:
        part = resid[:hh, :ww]  # whole periods of the picture itself (no copy)
    else:
        part = np.zeros((hh, ww), np.float32)
        part[: min(h, hh), : min(w, ww)] = resid[:hh, :ww]
    folded = part.reshape(hh // TILE, TILE, ww // TILE, TILE).sum(axis=(0, 2), dtype=np.float64)
    # The same high-pass once more, on the period (cyclically): with the first, this correlates the picture
    # with the high-passed mark, the matched filter for what the residual holds of it.
    folded = np.real(np.fft.ifft2(np.fft.fft2(folded) * _HIGH_PASS))
    # Long straight edges (a window's title bar and borders in a screenshot, letterbox bars) add up along one
    # row or column of the period. A row or column whose mean stands far out (4 standard errors) is such an
    # edge, and its mean goes; the others are left alone (their means are part of the mark).
    limit = 4.0 * float(folded.std()) / np.sqrt(GRID)  # a row holds GRID independent chips
    for axis in (1, 0):
        means = folded.mean(axis=axis, keepdims=True)
        folded -= np.where(np.abs(means) > limit, means, 0.0)
    return folded


def _sync(folded: np.ndarray) -> tuple[float, tuple[int, int]]:
    """The synchronisation peak's z-score and the tile's shift (x, y), over every cyclic shift at once."""
    corr = np.real(np.fft.ifft2(np.fft.fft2(folded) * _SYNC_FFT_CONJ))
    peak = np.unravel_index(int(np.argmax(corr)), corr.shape)
    z = float((corr[peak] - corr.mean()) / (corr.std() + 1e-9))
    return z, (int(peak[1]), int(peak[0]))


def _soft_bits(folded: np.ndarray, shift: tuple[int, int]) -> np.ndarray:
    aligned = np.roll(folded, (-shift[1], -shift[0]), axis=(0, 1))
    chips = aligned.reshape(GRID, CHIP, GRID, CHIP).mean(axis=(1, 3))
    return np.bincount(_OWNER.ravel(), weights=(chips * _SIGN).ravel(), minlength=PAYLOAD_BITS)


def _resampled(y: np.ndarray, scale: float) -> np.ndarray:
    """`y` brought back to the mark's own scale (a picture scaled by `scale` is resized by 1 / scale)."""
    h, w = y.shape
    size = (max(8, round(w / scale)), max(8, round(h / scale)))
    return cv2.resize(y, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


WINDOW = 3 * TILE  # the coarse search looks at windows of three periods (at scale 1)
COARSE_STEP = 1.012  # scale ratio between coarse candidates: drift over a window stays under half a chip
FINE_STEPS = tuple(1 + k * 0.002 for k in range(-4, 5))
CHASE_BITS, CHASE_FLIPS = 12, 3  # soft-decision decoding: the weakest bits flipped until the CRC holds


def _windows(h: int, w: int, side: int) -> list[tuple[int, int]]:
    """Top-left corners of the coarse windows: the centre, and a 3 x 3 grid when the picture is much larger
    than a window (a marked frame may sit anywhere in a screenshot)."""
    if h <= 2 * side and w <= 2 * side:
        return [(max(0, (h - side) // 2), max(0, (w - side) // 2))]
    ys = np.linspace(0, max(0, h - side), 3).astype(int)
    xs = np.linspace(0, max(0, w - side), 3).astype(int)
    return [(int(a), int(b)) for a in ys for b in xs]


def decode_bits(soft: np.ndarray) -> tuple[bytes | None, np.ndarray, int]:
    """(id, bits, corrected): the hard bits, then the weakest ones flipped (up to CHASE_FLIPS of the
    CHASE_BITS least certain: soft-decision "Chase" decoding) until the CRC-16 holds."""
    from itertools import combinations

    hard = soft > 0
    weakest = np.argsort(np.abs(soft))[:CHASE_BITS]
    for n in range(CHASE_FLIPS + 1):
        for flips in combinations(weakest, n):
            bits = hard.copy()
            bits[list(flips)] ^= True
            ident = bits_to_id(bits)
            if ident is not None:
                return ident, bits, n
    return None, hard, 0


def luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[..., 0].astype(np.float32)


def read(rgb: np.ndarray, *, search: bool = True) -> Reading:
    """Look for the mark in `rgb` (HxWx3 uint8) at any scale in SCALES, after crops and offsets (`search`
    False: at scale 1 only, the embedder's own check). A copy at its own size is read at once; otherwise a
    coarse search over scales on windows of the picture, then a finer one around the best few."""
    return read_luma(luma(rgb), search=search)


def read_luma(y: np.ndarray, *, search: bool = True) -> Reading:
    h, w = y.shape
    none = Reading(False, None, np.zeros(PAYLOAD_BITS, bool), 0.0, 1.0, (0, 0))
    if min(h, w) < MIN_SIDE * SCALES[0]:
        return none
    best = none
    best_folded = np.zeros((TILE, TILE))

    def look(at: float) -> None:
        nonlocal best, best_folded
        folded = _fold(_whitened(_resampled(y, at)))
        z, shift = _sync(folded)
        if z > best.z:
            best, best_folded = Reading(False, None, np.zeros(PAYLOAD_BITS, bool), z, at, shift), folded

    def decoded() -> Reading:
        ident, bits, corrected = decode_bits(_soft_bits(best_folded, best.shift))
        return Reading(best.z >= FOUND_Z and ident is not None, ident, bits, best.z, best.scale, best.shift,
                       corrected)

    look(1.0)  # copies at their own size are the commonest case
    if not search or best.z >= FOUND_Z:
        at_once = decoded() if best.z > 0 else none
        if not search or at_once.found:
            return at_once
    coarse: list[tuple[float, float]] = []
    scale = SCALES[0]
    while scale <= SCALES[1]:
        side = round(WINDOW * scale)
        z_max = max(_sync(_fold(_whitened(_resampled(y[top:top + side, left:left + side], scale))))[0]
                    for top, left in _windows(h, w, side))
        coarse.append((z_max, scale))
        scale *= COARSE_STEP
    coarse.sort(reverse=True)
    for _z, around in coarse[:3]:
        for k in FINE_STEPS:
            look(around * k)
        if best.z >= FOUND_Z:
            break
    if best.scale != 1.0:  # a finer look around the best scale: drift across a big picture
        around = best.scale
        for k in (0.9985, 0.999, 0.9995, 1.0005, 1.001, 1.0015):
            look(around * k)
    return decoded() if best.z > 0 else none
