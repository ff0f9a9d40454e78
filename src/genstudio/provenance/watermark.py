"""Invisible watermark in pixels (imwatermark's DWT-DCT-SVD), on BGR uint8 frames so images and video share it."""

from __future__ import annotations

import cv2
import numpy as np
import pywt
from imwatermark.dwtDctSvd import EmbedDwtDctSvd

WATERMARK_METHOD = "dwtDctSvd"
# Fixed genstudio tag: ASCII "GenStud1", 32 ones and 32 zeros, so a flat image that decodes to all
# zeros or all ones misses half the bits.
WATERMARK_TAG = b"GenStud1"
WATERMARK_BITS = len(WATERMARK_TAG) * 8
# imwatermark refuses frames under 256*256 pixels.
MIN_WATERMARK_PIXELS = 256 * 256
MIN_WATERMARK_SIDE = 16
# An unmarked image decodes to about 32 of 64 bits wrong; P(<= 10 wrong by chance) is about 1e-8.
MAX_BIT_ERRORS = 10

_TAG_BITS = np.unpackbits(np.frombuffer(WATERMARK_TAG, dtype=np.uint8)).astype(bool)


class _Embedder(EmbedDwtDctSvd):
    """imwatermark 0.2.0's encode() puts the horizontal and vertical wavelet details back swapped and
    truncates to uint8 twice, which costs about 10 dB of PSNR; this keeps its per-block scheme (so the
    stock WatermarkDecoder still reads our marks) and reconstructs correctly in float."""

    def encode(self, bgr: np.ndarray) -> np.ndarray:
        rows, cols = bgr.shape[0] // 4 * 4, bgr.shape[1] // 4 * 4
        # Forward in uint8 exactly as the decoder does; OpenCV centres float chroma on 0.5, not 128.
        yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV).astype(np.float64)
        for channel, scale in enumerate(self._scales):
            if scale <= 0:
                continue
            ca, details = pywt.dwt2(yuv[:rows, :cols, channel], "haar")
            self.encode_frame(ca, scale)
            yuv[:rows, :cols, channel] = pywt.idwt2((ca, details), "haar")
        yuv[:, :, 1:] -= 127.5
        bgr_out = cv2.cvtColor(yuv.astype(np.float32), cv2.COLOR_YUV2BGR)
        return np.clip(np.rint(bgr_out), 0, 255).astype(np.uint8)


def can_watermark(width: int, height: int) -> bool:
    """Whether a frame of this size is large enough for the watermark."""
    return width * height >= MIN_WATERMARK_PIXELS and min(width, height) >= MIN_WATERMARK_SIDE


def _check_frame(frame: np.ndarray) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 BGR frame, got shape {frame.shape} dtype {frame.dtype}")


def embed_watermark_bgr(frame: np.ndarray) -> np.ndarray:
    """Return a copy of `frame` (HxWx3 uint8 BGR) carrying the genstudio tag. Deterministic.

    Raises ValueError for a frame smaller than MIN_WATERMARK_PIXELS (see can_watermark)."""
    _check_frame(frame)
    height, width = frame.shape[:2]
    if not can_watermark(width, height):
        raise ValueError(f"frame {width}x{height} is too small for the watermark "
                         f"(needs at least {MIN_WATERMARK_PIXELS} pixels)")
    return _Embedder(_TAG_BITS.astype(int).tolist(), wmLen=WATERMARK_BITS, scales=[0, _SCALE, 0],
                     block=_BLOCK).encode(frame)


def _dct_matrix(n: int) -> np.ndarray:
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    scale = np.where(k == 0, np.sqrt(1 / n), np.sqrt(2 / n))
    return scale * np.cos(np.pi * (2 * i + 1) * k / (2 * n))  # orthonormal DCT-II, as cv2.dct


_BLOCK = 4
_SCALE = 36  # imwatermark's dwtDctSvd default for the U channel
_DCT = _dct_matrix(_BLOCK)


def decode_watermark_bits(frame: np.ndarray) -> np.ndarray:
    """The WATERMARK_BITS bits read from `frame` (bool array), whatever they are.

    Same blocks as imwatermark's dwtDctSvd decoder, vectorised, and with soft votes: a block whose
    singular value sits at the embedded 1/4 or 3/4 of a quantisation step counts fully, one near a
    boundary (clipped or flat areas, JPEG damage) hardly at all. Fewer bit errors on images with flat
    backgrounds than the stock majority vote, and about 3x faster."""
    _check_frame(frame)
    rows, cols = frame.shape[0] // 4 * 4, frame.shape[1] // 4 * 4
    u_plane = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV)[:rows, :cols, 1]
    ca, _ = pywt.dwt2(u_plane, "haar")
    r, c = ca.shape[0] // _BLOCK, ca.shape[1] // _BLOCK
    if r * c == 0:
        return np.zeros(WATERMARK_BITS, dtype=bool)
    blocks = ca[: r * _BLOCK, : c * _BLOCK].reshape(r, _BLOCK, c, _BLOCK).swapaxes(1, 2).reshape(-1, _BLOCK, _BLOCK)
    s0 = np.linalg.svd(_DCT @ blocks @ _DCT.T, compute_uv=False)[:, 0]
    votes = -np.sin(2 * np.pi * (s0 % _SCALE) / _SCALE)  # -1 at 1/4 step (bit 0), +1 at 3/4 (bit 1)
    return np.bincount(np.arange(s0.size) % WATERMARK_BITS, weights=votes, minlength=WATERMARK_BITS) > 0


def tag_bit_errors(bits: np.ndarray) -> int:
    """How many of `bits` differ from the genstudio tag."""
    return int(np.count_nonzero(np.asarray(bits, dtype=bool) != _TAG_BITS))


def detect_watermark_bgr(frame: np.ndarray) -> tuple[bool, int | None]:
    """(found, bit_errors against the genstudio tag); (False, None) when the frame is too small to carry one."""
    _check_frame(frame)
    height, width = frame.shape[:2]
    if not can_watermark(width, height):
        return False, None
    errors = tag_bit_errors(decode_watermark_bits(frame))
    return errors <= MAX_BIT_ERRORS, errors
