"""Stamp a generated image: invisible watermark in the pixels, then a signed C2PA manifest in the PNG."""

from __future__ import annotations

import hashlib
import io
import wave
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from genstudio.provenance import audiomark, syncmark
from genstudio.provenance.identity import SigningIdentity


def mark_id_of(rgb: np.ndarray) -> str:
    """The 6-byte id an output's watermark carries, as 12 hex digits: a hash of its pixels before marking, so
    the same picture always gets the same mark (outputs stay reproducible) and different pictures differ."""
    return hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest()[:12]


def watermark_image(image: Image.Image) -> tuple[Image.Image, dict[str, Any]]:
    """(image carrying the watermark, a record of what was done). Modes other than RGB/RGBA become RGB;
    alpha is kept untouched. The mark (`syncmark`: a periodic tile that resynchronises after scaling, crops
    and screenshots) carries an id of the output (`payload`), which the manifest declares as its soft
    binding. Too-small images come back unmarked, and the record says why; the record also says whether the
    mark reads back (`readable`, `bit_errors`)."""
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    record: dict[str, Any] = {"method": syncmark.METHOD, "bits": syncmark.PAYLOAD_BITS}
    if not syncmark.can_mark(image.width, image.height):
        record |= {"embedded": False,
                   "reason": f"image {image.width}x{image.height} is smaller than the "
                             f"{syncmark.MIN_SIDE} px a side {syncmark.METHOD} needs"}
        return image, record
    pixels = np.asarray(image)
    rgb = np.ascontiguousarray(pixels[:, :, :3])
    mark_id = mark_id_of(rgb)
    marked = syncmark.embed(rgb, bytes.fromhex(mark_id))
    # Flat white or black pictures leave the mark little room; read it back so the record is honest.
    check = syncmark.read(marked, search=False)
    if image.mode == "RGBA":
        marked = np.dstack([marked, pixels[:, :, 3]])
    record |= {"embedded": True, "payload": mark_id, "readable": check.found and check.ident == bytes.fromhex(mark_id),
               "bit_errors": check.corrected if check.found else None, "psnr_db": _psnr(rgb, marked[:, :, :3])}
    return Image.fromarray(np.ascontiguousarray(marked), image.mode), record


def watermark_wav(data: bytes) -> tuple[bytes, dict[str, Any]]:
    """(WAV bytes carrying the audio watermark, a record of what was done), for 16-bit PCM WAV; other WAVs
    and clips under audiomark.MIN_SECONDS come back unchanged, and the record says why. The id is a hash
    of the samples, as for images."""
    record: dict[str, Any] = {"method": audiomark.METHOD, "bits": syncmark.PAYLOAD_BITS}
    try:
        with wave.open(io.BytesIO(data)) as w:
            params = w.getparams()
            raw = w.readframes(params.nframes)
    except (wave.Error, EOFError) as exc:
        return data, record | {"embedded": False, "reason": f"not a readable WAV ({exc})"}
    if params.sampwidth != 2:
        return data, record | {"embedded": False, "reason": f"{8 * params.sampwidth}-bit WAV (16-bit PCM only)"}
    pcm = np.frombuffer(raw, "<i2").reshape(-1, params.nchannels)
    if not audiomark.can_mark(len(pcm), params.framerate):
        return data, record | {"embedded": False,
                               "reason": f"{len(pcm) / params.framerate:.1f} s is under the "
                                         f"{audiomark.MIN_SECONDS:g} s the audio mark needs"}
    mark_id = hashlib.sha256(pcm.tobytes()).hexdigest()[:12]
    x = pcm.astype(np.float64) / 32768.0
    marked = audiomark.embed(x, params.framerate, bytes.fromhex(mark_id))
    out_pcm = np.clip(np.round(marked * 32768.0), -32768, 32767).astype("<i2")
    check = audiomark.read(out_pcm.astype(np.float64) / 32768.0, params.framerate, search=False)
    noise = float(np.sum((out_pcm.astype(np.float64) - pcm) ** 2))
    snr = 10 * np.log10(float(np.sum(pcm.astype(np.float64) ** 2)) / noise) if noise else 99.0
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setparams(params)
        w.writeframes(out_pcm.tobytes())
    return buf.getvalue(), record | {"embedded": True, "payload": mark_id,
                                     "readable": check.found and check.ident == bytes.fromhex(mark_id),
                                     "bit_errors": check.corrected if check.found else None,
                                     "snr_db": round(snr, 1)}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return round(10 * np.log10(255.0**2 / mse), 1) if mse > 0 else 99.0


def encode_png(image: Image.Image, text_chunks: dict[str, str]) -> bytes:
    """PNG bytes with `text_chunks` as tEXt (iTXt where a value is not Latin-1)."""
    info = PngImagePlugin.PngInfo()
    for key, value in text_chunks.items():
        info.add_text(key, value)
    buf = io.BytesIO()
    image.save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def stamp_png(image: Image.Image, *, identity: SigningIdentity, text_chunks: dict[str, str], title: str,
              ai_info: dict[str, Any]) -> bytes:
    """The final PNG for a generated image, as the provenance stage writes it: watermarked pixels, the
    given text chunks (A1111 `parameters` included) and a signed C2PA manifest marking it AI-generated
    with `ai_info` in an `org.genstudio.generation` assertion. Raises ValueError for non-JSON `ai_info`."""
    from genstudio.provenance.stage import Seal, seal_bytes

    seal = Seal(title=title, ai_info=ai_info, text_chunks=text_chunks, image=image)
    return seal_bytes(b"", "image/png", seal, identity)
