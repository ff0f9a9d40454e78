"""Read provenance back from any file: our invisible watermark and an embedded C2PA manifest."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from genstudio.provenance.manifest import read_manifest
from genstudio.provenance.midi_signature import read_midi_manifest
from genstudio.provenance.watermark import (
    MAX_BIT_ERRORS,
    MIN_WATERMARK_PIXELS,
    WATERMARK_METHOD,
    can_watermark,
    decode_watermark_bits,
    tag_bit_errors,
)
from genstudio.storage.sniff import sniff_format

# Decoding runs a 4x4 SVD per block in Python: about 40 ms per 512x512, so cap what one request may cost.
MAX_VERIFY_PIXELS = 4096 * 4096  # the default of GENSTUDIO_MAX_IMAGE_PIXELS: checked from the header, before decoding

def _watermark_report(data: bytes) -> dict[str, Any]:
    report: dict[str, Any] = {"found": False, "payload": None, "bit_errors": None, "method": WATERMARK_METHOD}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > MAX_VERIFY_PIXELS:
                    return report | {"error": f"image {width}x{height} is larger than the "
                                              f"{MAX_VERIFY_PIXELS}-pixel limit for watermark detection"}
                if not can_watermark(width, height):
                    return report | {"error": f"image {width}x{height} is smaller than the "
                                              f"{MIN_WATERMARK_PIXELS}-pixel minimum; no watermark can be read"}
                rgb = np.asarray(image.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 -- PIL raises many error types for undecodable input
        return report | {"error": f"not a decodable image: {exc}"}
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    bits = decode_watermark_bits(bgr)
    errors = tag_bit_errors(bits)
    return report | {"found": errors <= MAX_BIT_ERRORS, "payload": np.packbits(bits).tobytes().hex(),
                     "bit_errors": errors}


# A studio's own checks: (bytes, format name, MIME) -> report sections to add or replace, or None.
Inspector = Callable[[bytes, str, str | None], dict[str, Any] | None]


def verify_bytes(data: bytes, *, filename: str | None = None, mime: str | None = None,
                 trust_anchors_pem: bytes | str | None = None,
                 inspectors: Sequence[Inspector] = ()) -> dict[str, Any]:
    """JSON-able report of the watermark and the signed manifest in `data`. Never raises for bad input.

    `inspectors` are the studios' own checks (the face-swap label and video watermark, what a MIDI file
    declares), merged into the report. `ai_generated` is True when a signed or embedded signal says so;
    a file that carries none reads `ai_generated: false` with `signals: "none"`, which says only that
    nothing was found. `trust_anchors_pem` (PEM certificates, e.g. this studio's root) lets
    `manifest.trusted` become True for manifests those anchors vouch for."""
    data = bytes(data)
    fmt, media_type = sniff_format(data, filename=filename, mime=mime)
    looks_like_image = media_type is None or media_type.startswith("image/")
    watermark = _watermark_report(data) if looks_like_image else {
        "found": False, "payload": None, "bit_errors": None, "method": WATERMARK_METHOD,
        "error": f"watermark detection needs an image, got {fmt}",
    }
    label: dict[str, Any] = {"found": False, "corner": None, "score": None,
                             "error": f"label check needs an image or a video, got {fmt}"}
    if fmt == "midi":
        manifest = read_midi_manifest(data, trust_anchors_pem=trust_anchors_pem)
    else:
        manifest = read_manifest(data, mime=media_type, trust_anchors_pem=trust_anchors_pem)
    report: dict[str, Any] = {
        "format": fmt,
        "mime": media_type,
        "size_bytes": len(data),
        "watermark": watermark,
        "label": label,
        "manifest": manifest,
    }
    for inspect in inspectors:
        try:
            found = inspect(data, fmt, media_type)
        except Exception as exc:  # noqa: BLE001 -- a report, never an exception
            found = {"errors": [f"{getattr(inspect, '__qualname__', 'check')} failed: {exc}"]}
        if found:
            report.update(found)
    signals = [name for name, ok in (("watermark", report["watermark"]["found"]),
                                     ("manifest", manifest["found"] and manifest["ai_generated"]),
                                     ("label", report["label"].get("found"))) if ok]
    report["ai_generated"] = bool(report["watermark"]["found"] or (manifest["found"] and manifest["ai_generated"]))
    report["signals"] = signals or "none"
    return report


def verify_file(path: Path, *, trust_anchors_pem: bytes | str | None = None,
                inspectors: Sequence[Inspector] = ()) -> dict[str, Any]:
    """verify_bytes on a file's contents, with its name as the format hint. Raises OSError if unreadable."""
    path = Path(path)
    return verify_bytes(path.read_bytes(), filename=path.name, trust_anchors_pem=trust_anchors_pem,
                        inspectors=inspectors)
