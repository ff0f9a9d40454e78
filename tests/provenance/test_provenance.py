"""Provenance: signing identity, watermark + C2PA stamping of PNGs, and verification of what comes back."""

from __future__ import annotations

import io
import json
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genstudio.provenance import (
    WATERMARK_BITS,
    SigningIdentity,
    detect_watermark_bgr,
    embed_watermark_bgr,
    ensure_identity,
    stamp_png,
    verify_bytes,
)

PARAMETERS = "a red fox in snow, ünïcode ☃\nNegative prompt: blurry\nSteps: 20, Sampler: Euler, CFG scale: 7.0, " \
    "Seed: 1234, Size: 512x512, Model: tiny"
AI_INFO = {"model": "tiny", "seed": 1234, "params": {"steps": 20, "guidance": 7.0, "prompt": "a red fox in snow"}}


def textured_image(size: int, seed: int = 0) -> Image.Image:
    """A deterministic image with smooth colour regions and fine grain, like a generated picture."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((max(size // 32, 2), max(size // 32, 2), 3)) * 255).astype(np.uint8))
    smooth = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float64)
    ramp = np.linspace(0, 80, size)[None, :, None]
    grain = rng.normal(0, 8, (size, size, 3))
    return Image.fromarray(np.clip(0.7 * smooth + ramp + grain, 0, 255).astype(np.uint8))


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        chunks.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return chunks


def build_png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = [b"\x89PNG\r\n\x1a\n"]
    for kind, body in chunks:
        out.append(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body)))
    return b"".join(out)


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> SigningIdentity:
    return ensure_identity(tmp_path_factory.mktemp("data") / "keys")


@pytest.fixture(scope="module")
def stamped(identity: SigningIdentity) -> bytes:
    return stamp_png(textured_image(512), identity=identity, text_chunks={"parameters": PARAMETERS},
                     title="fox.png", ai_info=AI_INFO)


def test_identity_is_created_once_with_private_permissions(tmp_path: Path) -> None:
    keys = tmp_path / "data" / "keys"
    first = ensure_identity(keys)
    second = ensure_identity(keys)
    assert second.cert_chain_pem == first.cert_chain_pem
    assert second.fingerprint_sha256 == first.fingerprint_sha256
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    for name in ("signing.key", "root-ca.key"):
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600
    assert first.cert_chain_pem.count(b"BEGIN CERTIFICATE") == 2
    assert not list(keys.glob("*.tmp"))


def test_stamped_png_carries_watermark_valid_manifest_and_parameters(stamped: bytes) -> None:
    report = verify_bytes(stamped, filename="fox.png")
    json.dumps(report)
    assert report["format"] == "png"
    assert report["ai_generated"] is True
    wm = report["watermark"]
    assert wm["found"] is True and wm["bit_errors"] == 0 and wm["method"] == "syncmark"
    assert wm["confidence"] > 0.99 and len(wm["payload"]) == 12
    manifest = report["manifest"]
    assert manifest["found"] and manifest["valid"] and manifest["ai_generated"]
    assert manifest["trusted"] is False and "signingCredential.untrusted" in manifest["validation_status"]
    assert manifest["claim_generator"].startswith("genstudio/")
    assert manifest["title"] == "fox.png"
    assert manifest["assertions"]["org.genstudio.generation"] == AI_INFO
    assert manifest["assertions"]["org.genstudio.watermark"]["embedded"] is True
    assert manifest["assertions"]["org.genstudio.watermark"]["readable"] is True
    assert manifest["assertions"]["org.genstudio.watermark"]["psnr_db"] >= 40
    binding = manifest["assertions"]["c2pa.soft-binding"]  # C2PA soft binding: the mark's payload
    assert binding["alg"] == "org.genstudio.syncmark.1"
    assert bytes.fromhex(wm["payload"]) == __import__("base64").b64decode(binding["blocks"][0]["value"])
    actions = manifest["assertions"]["c2pa.actions.v2"]["actions"]
    assert actions[0]["action"] == "c2pa.created"
    assert actions[0]["digitalSourceType"].endswith("/trainedAlgorithmicMedia")
    with Image.open(io.BytesIO(stamped)) as image:
        assert image.text["parameters"] == PARAMETERS
        assert image.size == (512, 512)


def test_own_root_as_trust_anchor_makes_manifest_trusted(identity: SigningIdentity, stamped: bytes) -> None:
    manifest = verify_bytes(stamped, trust_anchors_pem=identity.root_cert_pem)["manifest"]
    assert manifest["valid"] and manifest["trusted"]


def test_pixels_are_deterministic(identity: SigningIdentity, stamped: bytes) -> None:
    again = stamp_png(textured_image(512), identity=identity, text_chunks={"parameters": PARAMETERS},
                      title="fox.png", ai_info=AI_INFO)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(again))), np.asarray(Image.open(io.BytesIO(stamped))))


def test_small_image_is_signed_without_watermark(identity: SigningIdentity) -> None:
    data = stamp_png(textured_image(64), identity=identity, text_chunks={"parameters": PARAMETERS},
                     title="tiny.png", ai_info=AI_INFO)
    report = verify_bytes(data)
    assert report["watermark"]["found"] is False and report["watermark"]["bit_errors"] is None
    assert report["manifest"]["valid"] and report["ai_generated"]
    record = report["manifest"]["assertions"]["org.genstudio.watermark"]
    assert record["embedded"] is False and "64x64" in record["reason"]
    assert Image.open(io.BytesIO(data)).text["parameters"] == PARAMETERS


def test_flipped_idat_byte_invalidates_manifest(stamped: bytes) -> None:
    tampered = bytearray(stamped)
    tampered[stamped.index(b"IDAT") + 200] ^= 0x01
    manifest = verify_bytes(bytes(tampered))["manifest"]
    assert manifest["found"] and not manifest["valid"]
    assert "assertion.dataHash.mismatch" in manifest["validation_status"]


def test_repainted_pixels_with_manifest_kept_invalidate_manifest(stamped: bytes) -> None:
    pixels = np.asarray(Image.open(io.BytesIO(stamped))).copy()
    pixels[100:140, 100:140] = 255
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    new_idat = [c for c in png_chunks(buf.getvalue()) if c[0] == b"IDAT"]
    old = png_chunks(stamped)
    first = next(i for i, c in enumerate(old) if c[0] == b"IDAT")
    spliced = old[:first] + new_idat + [c for c in old[first:] if c[0] != b"IDAT"]
    report = verify_bytes(build_png(spliced))
    assert Image.open(io.BytesIO(build_png(spliced))).text["parameters"] == PARAMETERS
    assert report["manifest"]["found"] and not report["manifest"]["valid"]


def test_jpeg_reencode_keeps_watermark_but_loses_manifest(stamped: bytes) -> None:
    buf = io.BytesIO()
    Image.open(io.BytesIO(stamped)).convert("RGB").save(buf, "JPEG", quality=75)
    report = verify_bytes(buf.getvalue(), filename="fox.jpg")
    assert report["format"] == "jpeg"
    assert report["watermark"]["found"] is True
    assert report["watermark"]["bit_errors"] <= 0.05 * WATERMARK_BITS
    assert report["manifest"]["found"] is False  # no manifest store given: nothing to recover it from
    assert report["ai_generated"] is True


def test_unmarked_image_has_no_watermark() -> None:
    buf = io.BytesIO()
    textured_image(512, seed=7).save(buf, "PNG")
    report = verify_bytes(buf.getvalue())
    assert report["watermark"]["found"] is False and report["watermark"]["confidence"] < 0.5
    # No mark proves nothing: the verdict is "unknown", never "no".
    assert report["manifest"]["found"] is False and report["ai_generated"] == "unknown"


@pytest.mark.parametrize("garbage", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
                                     b"\xff\xd8\xff" + bytes(range(256))])
def test_garbage_is_reported_not_raised(garbage: bytes) -> None:
    report = verify_bytes(garbage, filename="x.png", mime="image/png")
    json.dumps(report)
    assert report["watermark"]["found"] is False and report["manifest"]["found"] is False
    assert report["ai_generated"] == "unknown"
    assert report["watermark"]["error"]


def test_bgr_frame_helpers_round_trip() -> None:
    frame = np.ascontiguousarray(np.asarray(textured_image(256, seed=3))[:, :, ::-1])
    marked = embed_watermark_bgr(frame)
    assert marked.shape == frame.shape and marked.dtype == np.uint8
    assert detect_watermark_bgr(marked) == (True, 0)
    assert detect_watermark_bgr(frame)[0] is False
    assert detect_watermark_bgr(frame[:64, :64].copy()) == (False, None)
    with pytest.raises(ValueError, match="too small"):
        embed_watermark_bgr(frame[:64, :64].copy())
