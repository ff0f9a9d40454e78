"""Cost of provenance on a 512x512 image: watermark methods, full stamp_png and verify_bytes (median of N runs).

    PYTHONPATH=src python bench/bench_provenance.py [--runs 9]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from imwatermark import WatermarkDecoder, WatermarkEncoder
from PIL import Image

from genstudio.provenance import (
    WATERMARK_BITS,
    WATERMARK_TAG,
    embed_watermark_bgr,
    ensure_identity,
    stamp_png,
    verify_bytes,
)


def textured_image(size: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((size // 32, size // 32, 3)) * 255).astype(np.uint8))
    smooth = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float64)
    ramp = np.linspace(0, 80, size)[None, :, None]
    return Image.fromarray(np.clip(0.7 * smooth + ramp + rng.normal(0, 8, (size, size, 3)), 0, 255).astype(np.uint8))


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def jpeg(bgr: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1])).save(buf, "JPEG", quality=quality)
    return np.ascontiguousarray(np.asarray(Image.open(buf).convert("RGB"))[:, :, ::-1])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    image = textured_image(512)
    bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
    encoder = WatermarkEncoder()
    encoder.set_watermark("bytes", WATERMARK_TAG)
    rows = []
    for method in ("dwtDct", "dwtDctSvd"):
        ms = median_ms(lambda m=method: encoder.encode(bgr.copy(), m), args.runs)
        rows.append((f"imwatermark {method} (stock encode)", ms, psnr(bgr, encoder.encode(bgr.copy(), method))))
    rows.append(("genstudio embed_watermark_bgr (dwtDctSvd)", median_ms(lambda: embed_watermark_bgr(bgr), args.runs),
                 psnr(bgr, embed_watermark_bgr(bgr))))
    with tempfile.TemporaryDirectory() as tmp:
        identity = ensure_identity(Path(tmp) / "keys")
        chunks = {"parameters": "bench\nSteps: 20, Seed: 1"}
        info = {"model": "bench", "seed": 1, "params": {}}
        def stamp() -> bytes:
            return stamp_png(image, identity=identity, text_chunks=chunks, title="b.png", ai_info=info)

        rows.append(("stamp_png total (watermark + PNG + C2PA sign)", median_ms(stamp, args.runs), None))
        rows.append(("PNG encode alone", median_ms(lambda: image.save(io.BytesIO(), "PNG"), args.runs), None))
        data = stamp()
        rows.append(("verify_bytes (watermark decode + C2PA read)", median_ms(lambda: verify_bytes(data), args.runs),
                     None))
    load = os.getloadavg()[0]
    print(f"512x512, median of {args.runs} runs, load average {load:.2f}, python {sys.version.split()[0]}")
    for name, ms, quality in rows:
        print(f"  {name:50s} {ms:7.1f} ms" + (f"   PSNR {quality:.1f} dB" if quality else ""))
    print(f"bit errors of {WATERMARK_BITS} after JPEG re-encode (quality 90 / 75 / 50), 3 images:")
    decoder = WatermarkDecoder("bits", WATERMARK_BITS)
    tag = np.unpackbits(np.frombuffer(WATERMARK_TAG, np.uint8))
    for name, embed in (("dwtDct (stock)", lambda f: encoder.encode(f.copy(), "dwtDct")),
                        ("dwtDctSvd (genstudio)", embed_watermark_bgr)):
        method = name.split()[0]
        errors = []
        for seed in range(3):
            marked = embed(np.ascontiguousarray(np.asarray(textured_image(512, seed))[:, :, ::-1]))
            errors.append([int(np.count_nonzero(np.array(decoder.decode(jpeg(marked, q), method)) != tag))
                           for q in (90, 75, 50)])
        print(f"  {name:24s} {errors}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
