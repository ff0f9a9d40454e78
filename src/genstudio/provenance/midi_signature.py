"""Signed provenance for MIDI files, which C2PA cannot carry: a manifest and an ES256 signature in a last
track of their own.

The signature track is one MTrk chunk appended to the file (the header's track count includes it). It
holds a text meta event `genstudio-signature:` + base64(JSON) with the manifest, the SHA-256 of every
byte of the file before that chunk, the signing time and the certificate chain (leaf first). The
signature covers the manifest, the hash and the time, so editing a note, the manifest or the claim
breaks it. Players ignore the extra track (a text event and an end-of-track)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from genstudio.provenance.identity import SigningIdentity
from genstudio.provenance.manifest import _ai_generated, _empty_report

PREFIX = b"genstudio-signature:"
METHOD = "genstudio-midi-signature/1"
MAX_SIGNATURE_BYTES = 64 * 1024


class MidiSignatureError(ValueError):
    """The bytes are not a MIDI file that can be signed."""


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def _read_vlq(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for _ in range(4):
        if pos >= len(data):
            raise ValueError("truncated variable-length number")
        byte = data[pos]
        pos += 1
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, pos
    raise ValueError("variable-length number over 4 bytes")


def _chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of each chunk; raises ValueError where a length does not fit."""
    out, pos = [], 0
    while pos < len(data):
        if len(data) - pos < 8:
            raise ValueError("MIDI ends inside a chunk header")
        length = int.from_bytes(data[pos + 4 : pos + 8], "big")
        end = pos + 8 + length
        if end > len(data):
            raise ValueError("a MIDI chunk runs past the end of the file")
        out.append((data[pos : pos + 4], pos, end))
        pos = end
    if not out or out[0][0] != b"MThd" or out[0][2] - out[0][1] < 14:
        raise ValueError("not a MIDI file (no MThd header)")
    return out


def _claim_bytes(manifest: dict[str, Any], content_sha256: str, signed_at: str) -> bytes:
    claim = {"manifest": manifest, "content_sha256": content_sha256, "signed_at": signed_at, "method": METHOD}
    return json.dumps(claim, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def sign_midi(data: bytes, *, manifest: dict[str, Any], identity: SigningIdentity,
              now: dt.datetime | None = None) -> bytes:
    """`data` with a signature track appended (an earlier genstudio signature is replaced)."""
    try:
        data = strip_signature(data)[0]
        chunks = _chunks(data)
    except ValueError as exc:
        raise MidiSignatureError(f"cannot sign: {exc}") from exc
    header = bytearray(data[: chunks[0][2]])
    fmt, ntracks = int.from_bytes(header[8:10], "big"), int.from_bytes(header[10:12], "big")
    if fmt == 2:
        raise MidiSignatureError("cannot sign a format-2 MIDI file (independent sequences)")
    header[8:10] = (1).to_bytes(2, "big")  # a format-0 file with a second track becomes format 1
    header[10:12] = (ntracks + 1).to_bytes(2, "big")
    content = bytes(header) + data[chunks[0][2] :]
    signed_at = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0).isoformat()
    digest = hashlib.sha256(content).hexdigest()
    claim = _claim_bytes(manifest, digest, signed_at)
    key = serialization.load_pem_private_key(identity.private_key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signature = key.sign(claim, ec.ECDSA(hashes.SHA256()))
    record = {
        "method": METHOD,
        "manifest": manifest,
        "content_sha256": digest,
        "signed_at": signed_at,
        "alg": "ES256",
        "signature": base64.b64encode(signature).decode(),
        "chain": identity.cert_chain_pem.decode(),
    }
    text = PREFIX + base64.b64encode(json.dumps(record, separators=(",", ":")).encode())
    events = b"\x00\xff\x01" + _vlq(len(text)) + text + b"\x00\xff\x2f\x00"
    return content + b"MTrk" + len(events).to_bytes(4, "big") + events


def strip_signature(data: bytes) -> tuple[bytes, dict[str, Any] | None]:
    """(the file as it was before signing, the decoded signature record or None). ValueError for a file
    whose chunks do not fit; a last track that is not a genstudio signature is left alone."""
    chunks = _chunks(data)
    kind, start, end = chunks[-1]
    if kind != b"MTrk" or len(chunks) < 2 or end - start > MAX_SIGNATURE_BYTES + 64:
        return data, None
    body = data[start + 8 : end]
    if not body.startswith(b"\x00\xff\x01"):
        return data, None
    length, pos = _read_vlq(body, 3)
    text = body[pos : pos + length]
    if not text.startswith(PREFIX):
        return data, None
    try:
        record = json.loads(base64.b64decode(text[len(PREFIX) :], validate=True))
    except ValueError:
        record = {"error": "the signature track is not valid base64 JSON"}
    if not isinstance(record, dict):
        record = {"error": "the signature track is not a JSON object"}
    return data[:start], record


def _cn(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


def read_midi_manifest(data: bytes, *, trust_anchors_pem: bytes | str | None = None) -> dict[str, Any]:
    """A report shaped like `read_manifest`'s for a MIDI file's signature track; never raises."""
    try:
        content, record = strip_signature(data)
    except ValueError as exc:
        return _empty_report([f"not a readable MIDI file: {exc}"])
    if record is None:
        return _empty_report()
    report = _empty_report()
    report.update(found=True, method=METHOD)
    if "error" in record:
        return report | {"errors": [record["error"]], "validation_state": "Invalid"}
    errors: list[str] = []
    manifest = record.get("manifest") if isinstance(record.get("manifest"), dict) else {}
    assertions = {str(a.get("label")): a.get("data") for a in manifest.get("assertions") or [] if isinstance(a, dict)}
    report.update(
        ai_generated=_ai_generated(assertions),
        claim_generator=manifest.get("claim_generator"),
        title=manifest.get("title"),
        signed_at=record.get("signed_at"),
        assertions=assertions,
    )
    valid = False
    try:
        certs = x509.load_pem_x509_certificates(str(record.get("chain", "")).encode())
        leaf = certs[0]
        report.update(signer=_cn(leaf.subject), signer_issuer=_cn(leaf.issuer))
        if hashlib.sha256(content).hexdigest() != record.get("content_sha256"):
            errors.append("assertion.dataHash.mismatch: the notes were changed after signing")
        claim = _claim_bytes(manifest, str(record.get("content_sha256")), str(record.get("signed_at")))
        public = leaf.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise ValueError("the signing certificate's key is not an EC key")
        public.verify(base64.b64decode(str(record.get("signature", ""))), claim, ec.ECDSA(hashes.SHA256()))
        for child, parent in zip(certs, certs[1:], strict=False):
            child.verify_directly_issued_by(parent)
        valid = not errors
    except InvalidSignature:
        errors.append("claimSignature.mismatch: the signature does not match the manifest")
    except (ValueError, TypeError, IndexError) as exc:
        errors.append(f"signature unreadable: {exc}")
    trusted = False
    if valid and trust_anchors_pem:
        pem = trust_anchors_pem.encode() if isinstance(trust_anchors_pem, str) else trust_anchors_pem
        anchors = {a.fingerprint(hashes.SHA256()) for a in x509.load_pem_x509_certificates(pem)}
        trusted = any(c.fingerprint(hashes.SHA256()) in anchors for c in certs)
    state = "Trusted" if trusted else ("Valid" if valid else "Invalid")
    return report | {"valid": valid, "trusted": trusted, "validation_state": state,
                     "validation_status": [e.split(":")[0] for e in errors], "errors": errors}
