"""C2PA manifests: build one that marks an asset AI-generated, sign it into the asset, read one back."""

from __future__ import annotations

import io
import json
from typing import Any

import c2pa

from genstudio import __version__
from genstudio.provenance.identity import SigningIdentity

CLAIM_GENERATOR = f"genstudio/{__version__}"
GENERATION_LABEL = "org.genstudio.generation"
WATERMARK_LABEL = "org.genstudio.watermark"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
# IPTC digital source types that say a trained model made (some of) the content.
AI_SOURCE_TYPES = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "compositeSynthetic"})
# c2pa-rs reports a certificate chain that ends in no configured trust anchor with this code; the
# signature and hashes can still be intact, which is what "valid" means here.
UNTRUSTED_CODE = "signingCredential.untrusted"


class ManifestError(RuntimeError):
    """Signing a manifest into an asset failed."""


COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA = (
    "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
)


def build_manifest(*, title: str, mime: str, ai_info: dict[str, Any],
                   extra_assertions: list[dict[str, Any]] | None = None,
                   composite: bool = False, description: str | None = None) -> dict[str, Any]:
    """A manifest definition for content a trained model created (or, with `composite`, a composite of
    real media and a trained model's output), with `ai_info` as our own assertion.

    Raises ValueError if `ai_info` is not plain JSON (NaN and infinities included)."""
    try:
        ai_info = json.loads(json.dumps(ai_info, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"ai_info must be JSON-serialisable: {exc}") from exc
    return {
        "claim_generator": CLAIM_GENERATOR,
        "claim_generator_info": [{"name": "genstudio", "version": __version__}],
        "title": title,
        "format": mime,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {"actions": [{
                    "action": "c2pa.created",
                    "digitalSourceType": COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA if composite
                    else TRAINED_ALGORITHMIC_MEDIA,
                    "softwareAgent": {"name": "genstudio", "version": __version__},
                    **({"description": description} if description else {}),
                }]},
            },
            {"label": GENERATION_LABEL, "data": ai_info},
            *(extra_assertions or []),
        ],
    }


def sign_asset(data: bytes, *, mime: str, manifest: dict[str, Any], identity: SigningIdentity) -> bytes:
    """`data` with `manifest` signed and embedded (offline: no timestamp authority)."""
    dest = io.BytesIO()
    try:
        with identity.signer() as signer, c2pa.Builder(manifest) as builder:
            builder.sign(signer, mime, io.BytesIO(data), dest)
    except c2pa.C2paError as exc:
        raise ManifestError(f"C2PA signing failed: {exc}") from exc
    return dest.getvalue()


def _empty_report(errors: list[str] | None = None) -> dict[str, Any]:
    return {
        "found": False, "valid": False, "trusted": False, "ai_generated": False,
        "claim_generator": None, "signer": None, "signer_issuer": None, "signed_at": None, "title": None,
        "validation_state": None, "validation_status": [], "assertions": {}, "errors": errors or [],
    }


def _ai_generated(assertions: dict[str, Any]) -> bool:
    for label, data in assertions.items():
        if not label.startswith("c2pa.actions") or not isinstance(data, dict):
            continue
        for action in data.get("actions") or []:
            source = str((action or {}).get("digitalSourceType") or "")
            if source.rstrip("/").rsplit("/", 1)[-1] in AI_SOURCE_TYPES:
                return True
    return False


def _claim_generator(manifest: dict[str, Any]) -> str | None:
    if manifest.get("claim_generator"):
        return str(manifest["claim_generator"])
    info = manifest.get("claim_generator_info") or []
    if info and isinstance(info[0], dict) and info[0].get("name"):
        version = info[0].get("version")
        return f"{info[0]['name']}/{version}" if version else str(info[0]["name"])
    return None


def _reader_context(trust_anchors_pem: bytes | str | None) -> c2pa.Context | None:
    if not trust_anchors_pem:
        return None
    pem = trust_anchors_pem.decode() if isinstance(trust_anchors_pem, bytes) else trust_anchors_pem
    return c2pa.Context.from_dict({"trust": {"user_anchors": pem}})


def read_manifest(data: bytes, *, mime: str | None,
                  trust_anchors_pem: bytes | str | None = None) -> dict[str, Any]:
    """Report on the C2PA manifest embedded in `data`; never raises.

    `valid`: the active manifest's signature and hashes check out (c2pa validation state Valid or
    Trusted). `trusted`: its certificate chains to a trust anchor; c2pa ships none, so only anchors
    passed in `trust_anchors_pem` (e.g. this studio's root) make that True."""
    try:
        context = _reader_context(trust_anchors_pem)
        reader = c2pa.Reader(mime, io.BytesIO(data), None, context) if context else c2pa.Reader(mime, io.BytesIO(data))
    except c2pa.C2paError.ManifestNotFound:
        return _empty_report()
    except Exception as exc:  # noqa: BLE001 -- c2pa raises many error types for malformed input; never raise
        report = _empty_report([f"manifest unreadable: {exc}"])
        # JUMBF boxes present but unreadable: there was a manifest, and it is broken.
        report["found"] = b"jumb" in data and b"c2pa" in data
        return report
    try:
        with reader:
            store = json.loads(reader.json())
            state = reader.get_validation_state()
            results = reader.get_validation_results() or {}
    except Exception as exc:  # noqa: BLE001 -- a report, never an exception
        report = _empty_report([f"manifest unreadable: {exc}"])
        report["found"] = True
        return report

    active = store.get("manifests", {}).get(store.get("active_manifest") or "", {})
    assertions: dict[str, Any] = {}
    for assertion in active.get("assertions") or []:
        label = str(assertion.get("label"))
        key, n = label, 1
        while key in assertions:
            n += 1
            key = f"{label}#{n}"
        assertions[key] = assertion.get("data")
    failures = [item.get("code") for item in (results.get("activeManifest") or {}).get("failure") or []]
    signature = active.get("signature_info") or {}
    errors = [f"{code}" for code in failures if code != UNTRUSTED_CODE]
    if not active:
        errors.append("no active manifest")
    return {
        "found": True,
        "valid": bool(active) and state in ("Valid", "Trusted"),
        "trusted": state == "Trusted",
        "ai_generated": _ai_generated(assertions),
        "claim_generator": _claim_generator(active),
        "signer": signature.get("common_name") or signature.get("issuer"),
        "signer_issuer": signature.get("issuer"),
        "signed_at": signature.get("time"),
        "title": active.get("title"),
        "validation_state": state,
        "validation_status": failures,
        "assertions": assertions,
        "errors": errors,
    }
