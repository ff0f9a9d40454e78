"""Read provenance back from any file: our invisible watermark and an embedded C2PA manifest."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from genstudio.provenance import audiomark, syncmark
from genstudio.provenance.manifest import read_manifest
from genstudio.provenance.midi_signature import read_midi_manifest
from genstudio.provenance.store import ManifestStore
from genstudio.provenance.watermark import (
    MAX_BIT_ERRORS,
    WATERMARK_METHOD,
    can_watermark,
    decode_watermark_bits,
    tag_bit_errors,
)
from genstudio.storage.sniff import sniff_format

# Decoding runs a 4x4 SVD per block in Python: about 40 ms per 512x512, so cap what one request may cost.
MAX_VERIFY_PIXELS = 4096 * 4096  # the default of GENSTUDIO_MAX_IMAGE_PIXELS: checked from the header, before decoding

READ_SIDE = 2048  # larger pictures are read downscaled to this (the mark survives down to half its size)


def _watermark_report(data: bytes) -> dict[str, Any]:
    report: dict[str, Any] = {"found": False, "payload": None, "bit_errors": None, "confidence": 0.0,
                              "method": None}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > MAX_VERIFY_PIXELS:
                    return report | {"error": f"image {width}x{height} is larger than the "
                                              f"{MAX_VERIFY_PIXELS}-pixel limit for watermark detection"}
                rgb = np.asarray(image.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 -- PIL raises many error types for undecodable input
        return report | {"error": f"not a decodable image: {exc}"}
    shrink = min(1.0, READ_SIDE / max(width, height))
    work = rgb if shrink == 1.0 else cv2.resize(rgb, (round(width * shrink), round(height * shrink)),
                                                interpolation=cv2.INTER_AREA)
    reading = syncmark.read(work)
    if reading.found:
        assert reading.ident is not None
        return report | {"found": True, "method": syncmark.METHOD, "payload": reading.ident.hex(),
                         "bit_errors": reading.corrected, "confidence": round(reading.confidence, 4),
                         "scale": round(reading.scale / shrink, 3), "sync_z": round(reading.z, 1)}
    report |= {"confidence": round(reading.confidence, 4), "sync_z": round(reading.z, 1)}
    # Outputs made before the resynchronising mark carry imwatermark's DWT-DCT-SVD tag: read it too.
    if can_watermark(width, height):
        bits = decode_watermark_bits(np.ascontiguousarray(rgb[:, :, ::-1]))
        errors = tag_bit_errors(bits)
        if errors <= MAX_BIT_ERRORS:
            return report | {"found": True, "method": WATERMARK_METHOD, "payload": np.packbits(bits).tobytes().hex(),
                             "bit_errors": errors, "confidence": round(1 - errors / MAX_BIT_ERRORS / 2, 4)}
    if not syncmark.can_mark(width, height) and not can_watermark(width, height):
        report["error"] = f"image {width}x{height} is too small to carry a watermark"
    return report


AUDIO_FORMATS = frozenset({"wav", "mp3", "aac", "m4a", "ogg", "flac"})
AUDIO_READ_SECONDS = 30  # the first 30 s are read (the mark repeats every 0.74 s)
AUDIO_RATE = 44100


def _decode_audio(data: bytes, fmt: str) -> tuple[np.ndarray, int]:
    """Mono float samples: 16-bit WAV directly, anything else through ffmpeg (imageio-ffmpeg's binary)."""
    if fmt == "wav":
        import wave

        try:
            with wave.open(io.BytesIO(data)) as w:
                if w.getsampwidth() == 2:
                    rate, channels = w.getframerate(), w.getnchannels()
                    raw = w.readframes(min(w.getnframes(), AUDIO_READ_SECONDS * rate))
                    pcm = np.frombuffer(raw, "<i2").reshape(-1, channels).astype(np.float64) / 32768.0
                    return pcm.mean(axis=1), rate
        except (wave.Error, EOFError):
            pass
    import subprocess

    import imageio_ffmpeg

    done = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", "pipe:0",
                           "-t", str(AUDIO_READ_SECONDS), "-ac", "1", "-ar", str(AUDIO_RATE), "-f", "s16le", "pipe:1"],
                          input=data, capture_output=True, timeout=60, check=False)
    if done.returncode != 0 or not done.stdout:
        raise ValueError(done.stderr.decode(errors="replace").strip().splitlines()[-1] if done.stderr else "no audio")
    return np.frombuffer(done.stdout, "<i2").astype(np.float64) / 32768.0, AUDIO_RATE


def _audio_watermark_report(data: bytes, fmt: str) -> dict[str, Any]:
    report: dict[str, Any] = {"found": False, "payload": None, "bit_errors": None, "confidence": 0.0,
                              "method": audiomark.METHOD}
    try:
        samples, rate = _decode_audio(data, fmt)
    except Exception as exc:  # noqa: BLE001 - a report, never an exception
        return report | {"error": f"not decodable audio: {exc}"}
    reading = audiomark.read(samples, rate)
    report |= {"confidence": round(reading.confidence, 4), "sync_z": round(reading.z, 1)}
    if reading.found and reading.ident is not None:
        report |= {"found": True, "payload": reading.ident.hex(), "bit_errors": reading.corrected,
                   "stretch": round(reading.stretch, 3)}
    return report


def recovered_manifest(watermark: dict[str, Any], manifests: ManifestStore | None) -> dict[str, Any] | None:
    """The manifest this studio signed for the output whose mark `watermark` read (C2PA soft binding), marked
    as recovered; None when there is no such mark or no such manifest here."""
    if manifests is None or not watermark.get("found") or watermark.get("method") not in (syncmark.METHOD,
                                                                                            audiomark.METHOD):
        return None
    stored = manifests.get(str(watermark["payload"]))
    if stored is None:
        return None
    return stored | {"recovered": True, "recovered_via": f"watermark ({syncmark.SOFT_BINDING_ALG} soft binding)",
                     "note": "this file carries no manifest; its watermark names this one, which the studio "
                             "signed for the original output"}


# A studio's own checks: (bytes, format name, MIME) -> report sections to add or replace, or None.
Inspector = Callable[[bytes, str, str | None], dict[str, Any] | None]


def verify_bytes(data: bytes, *, filename: str | None = None, mime: str | None = None,
                 trust_anchors_pem: bytes | str | None = None,
                 inspectors: Sequence[Inspector] = (), manifests: ManifestStore | None = None) -> dict[str, Any]:
    """JSON-able report of the watermark and the signed manifest in `data`. Never raises for bad input.

    `inspectors` are the studios' own checks (the face-swap label and video watermark, what a MIDI file
    declares), merged into the report. `ai_generated` is True when a mark of ours says so (a watermark, a
    valid manifest saying a model made it, the visible label); otherwise "unknown", never False: a file
    without marks proves nothing. A file with no manifest whose watermark names one in `manifests` gets
    that manifest back, marked `recovered`. `trust_anchors_pem` (PEM certificates, e.g. this studio's root) lets
    `manifest.trusted` become True for manifests those anchors vouch for."""
    data = bytes(data)
    fmt, media_type = sniff_format(data, filename=filename, mime=mime)
    looks_like_image = media_type is None or media_type.startswith("image/")
    if fmt in AUDIO_FORMATS:
        watermark = _audio_watermark_report(data, fmt)
    elif looks_like_image:
        watermark = _watermark_report(data)
    else:
        watermark = {"found": False, "payload": None, "bit_errors": None, "method": None, "confidence": 0.0,
                     "error": f"watermark detection needs an image or audio, got {fmt}"}
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
    frame_mark = report.pop("frame_watermark", None)
    if frame_mark and frame_mark.get("found") and not report["watermark"].get("found"):
        # A still that is a frame of a face-swap video: that video's frame mark, read by the studio's check.
        report["watermark"] = frame_mark | {"note": "the video frame mark of a face-swap output"}
    if not report["manifest"]["found"]:
        recovered = recovered_manifest(report["watermark"], manifests)
        if recovered is not None:
            report["manifest"] = recovered
    manifest = report["manifest"]
    signals = [name for name, ok in (("watermark", report["watermark"]["found"]),
                                     ("manifest", manifest["found"] and manifest["ai_generated"]),
                                     ("label", report["label"].get("found"))) if ok]
    report["ai_generated"] = True if signals else "unknown"
    report["signals"] = signals or "none"
    return report


def verify_file(path: Path, *, trust_anchors_pem: bytes | str | None = None,
                inspectors: Sequence[Inspector] = (), manifests: ManifestStore | None = None) -> dict[str, Any]:
    """verify_bytes on a file's contents, with its name as the format hint. Raises OSError if unreadable."""
    path = Path(path)
    return verify_bytes(path.read_bytes(), filename=path.name, trust_anchors_pem=trust_anchors_pem,
                        inspectors=inspectors, manifests=manifests)
