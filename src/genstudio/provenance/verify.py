"""Read provenance back from any file: our invisible watermark and an embedded C2PA manifest."""

from __future__ import annotations

import io
import json
import mimetypes
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from genstudio.provenance.manifest import read_manifest
from genstudio.provenance.watermark import (
    MAX_BIT_ERRORS,
    MIN_WATERMARK_PIXELS,
    WATERMARK_METHOD,
    can_watermark,
    decode_watermark_bits,
    tag_bit_errors,
)

# Decoding runs a 4x4 SVD per block in Python: about 40 ms per 512x512, so cap what one request may cost.
MAX_VERIFY_PIXELS = 40_000_000

_MAGIC: list[tuple[bytes, int, str, str]] = [
    (b"\x89PNG\r\n\x1a\n", 0, "png", "image/png"),
    (b"\xff\xd8\xff", 0, "jpeg", "image/jpeg"),
    (b"GIF8", 0, "gif", "image/gif"),
    (b"WEBP", 8, "webp", "image/webp"),
    (b"II*\x00", 0, "tiff", "image/tiff"),
    (b"MM\x00*", 0, "tiff", "image/tiff"),
    (b"BM", 0, "bmp", "image/bmp"),
    (b"WAVE", 8, "wav", "audio/wav"),
    (b"ID3", 0, "mp3", "audio/mpeg"),
    (b"fLaC", 0, "flac", "audio/flac"),
    (b"ftyp", 4, "mp4", "video/mp4"),
    (b"MThd", 0, "midi", "audio/midi"),
]


def sniff_format(data: bytes, *, filename: str | None = None, mime: str | None = None) -> tuple[str, str | None]:
    """(short format name, MIME type) from the leading bytes; the name or MIME a client sent is only a
    fallback, since either can lie."""
    for magic, offset, name, media_type in _MAGIC:
        if data[offset:offset + len(magic)] == magic:
            return name, media_type
    guess = mime or (mimetypes.guess_type(filename)[0] if filename else None)
    if guess:
        return guess.split("/")[-1].removeprefix("x-"), guess
    return "unknown", None


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


def verify_bytes(data: bytes, *, filename: str | None = None, mime: str | None = None,
                 trust_anchors_pem: bytes | str | None = None) -> dict[str, Any]:
    """JSON-able report of the watermark and C2PA manifest in `data`. Never raises for bad input.

    `ai_generated` is True when either signal says so. `trust_anchors_pem` (PEM certificates, e.g. this
    studio's root) lets `manifest.trusted` become True for manifests those anchors vouch for."""
    data = bytes(data)
    fmt, media_type = sniff_format(data, filename=filename, mime=mime)
    looks_like_image = media_type is None or media_type.startswith("image/")
    video = None
    if fmt == "mp4":
        from genstudio.faceswap.verify_media import video_report

        found = video_report(data)
        watermark, label, video = found["watermark"], found["label"], found["video"]
    else:
        watermark = _watermark_report(data) if looks_like_image else {
            "found": False, "payload": None, "bit_errors": None, "method": WATERMARK_METHOD,
            "error": f"watermark detection needs an image, got {fmt}",
        }
        label = _label_report(data) if looks_like_image else {
            "found": False, "corner": None, "score": None, "error": f"label check needs an image or a video, got {fmt}",
        }
    manifest = read_manifest(data, mime=media_type, trust_anchors_pem=trust_anchors_pem)
    report = {
        "format": fmt,
        "mime": media_type,
        "size_bytes": len(data),
        "watermark": watermark,
        "label": label,
        "manifest": manifest,
        "ai_generated": bool(watermark["found"] or (manifest["found"] and manifest["ai_generated"])),
    }
    if video is not None:
        report["video"] = video
    if fmt == "midi":
        report["midi"] = _midi_report(data)
    return report


def _midi_report(data: bytes) -> dict[str, Any]:
    """What a MIDI file says about itself. MIDI holds no watermark or C2PA manifest: these are
    unsigned claims (anyone can write them), reported as such; `ai_generated` stays the signed signals'."""
    import mido

    report: dict[str, Any] = {"declared_ai_generated": False, "copyright": None, "generation": None, "signed": False}
    try:
        mid = mido.MidiFile(file=io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 -- mido raises many types for broken files
        return report | {"error": f"not a readable MIDI file: {exc or type(exc).__name__}"}
    from genstudio.music.render import META_PREFIX

    for track in mid.tracks:
        for msg in track:
            if msg.type == "copyright" and report["copyright"] is None:
                report["copyright"] = msg.text
                report["declared_ai_generated"] = "ai-generated" in msg.text.lower()
            elif msg.type == "text" and msg.text.startswith(META_PREFIX) and report["generation"] is None:
                try:
                    params = json.loads(msg.text[len(META_PREFIX):])
                except ValueError:
                    continue
                if isinstance(params, dict):
                    report["generation"] = {k: v for k, v in params.items() if k != "notes"}
    return report


def _label_report(data: bytes) -> dict[str, Any]:
    """The visible "AI-generated" label of face-swap outputs, looked for in every corner."""
    report: dict[str, Any] = {"found": False, "corner": None, "score": None}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_VERIFY_PIXELS:
                    return report | {"error": "image too large for the label check"}
                rgb = np.asarray(image.convert("RGB"))
        from genstudio.faceswap.verify_media import image_label_report

        return image_label_report(np.ascontiguousarray(rgb[:, :, ::-1]))
    except Exception as exc:  # noqa: BLE001 -- a report, never an exception
        return report | {"error": f"label check failed: {exc}"}


def verify_file(path: Path, *, trust_anchors_pem: bytes | str | None = None) -> dict[str, Any]:
    """verify_bytes on a file's contents, with its name as the format hint. Raises OSError if unreadable."""
    path = Path(path)
    return verify_bytes(path.read_bytes(), filename=path.name, trust_anchors_pem=trust_anchors_pem)
