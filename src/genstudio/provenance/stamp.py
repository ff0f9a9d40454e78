"""Stamp a generated image: invisible watermark in the pixels, then a signed C2PA manifest in the PNG."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from genstudio.provenance.identity import SigningIdentity
from genstudio.provenance.watermark import (
    MIN_WATERMARK_PIXELS,
    WATERMARK_BITS,
    WATERMARK_METHOD,
    WATERMARK_TAG,
    can_watermark,
    detect_watermark_bgr,
    embed_watermark_bgr,
)


def watermark_image(image: Image.Image) -> tuple[Image.Image, dict[str, Any]]:
    """(image carrying the watermark, a record of what was done). Modes other than RGB/RGBA become RGB;
    alpha is kept untouched. Too-small images come back unmarked, and the record says why; the record
    also says whether the mark reads back (`readable`, `bit_errors`), which flat white or black fails."""
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    record: dict[str, Any] = {"method": WATERMARK_METHOD, "bits": WATERMARK_BITS, "payload": WATERMARK_TAG.hex()}
    if not can_watermark(image.width, image.height):
        record |= {"embedded": False,
                   "reason": f"image {image.width}x{image.height} is smaller than the "
                             f"{MIN_WATERMARK_PIXELS}-pixel minimum of {WATERMARK_METHOD}"}
        return image, record
    pixels = np.asarray(image)
    marked_bgr = embed_watermark_bgr(np.ascontiguousarray(pixels[:, :, 2::-1]))
    # Pure white or black areas clip the chroma change away; read the mark back so the record is honest.
    readable, errors = detect_watermark_bgr(marked_bgr)
    marked = marked_bgr[:, :, ::-1]
    if image.mode == "RGBA":
        marked = np.dstack([marked, pixels[:, :, 3]])
    record |= {"embedded": True, "readable": readable, "bit_errors": errors}
    return Image.fromarray(np.ascontiguousarray(marked), image.mode), record


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
