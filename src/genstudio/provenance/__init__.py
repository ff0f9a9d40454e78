"""Provenance for everything genstudio makes: an invisible watermark plus a signed C2PA manifest."""

from genstudio.provenance.identity import IdentityError, SigningIdentity, ensure_identity
from genstudio.provenance.manifest import (
    GENERATION_LABEL,
    WATERMARK_LABEL,
    ManifestError,
    build_manifest,
    read_manifest,
    sign_asset,
)
from genstudio.provenance.stamp import stamp_png, watermark_image
from genstudio.provenance.verify import verify_bytes, verify_file
from genstudio.provenance.watermark import (
    WATERMARK_BITS,
    WATERMARK_METHOD,
    WATERMARK_TAG,
    can_watermark,
    detect_watermark_bgr,
    embed_watermark_bgr,
)

__all__ = [
    "GENERATION_LABEL",
    "WATERMARK_BITS",
    "WATERMARK_LABEL",
    "WATERMARK_METHOD",
    "WATERMARK_TAG",
    "IdentityError",
    "ManifestError",
    "SigningIdentity",
    "build_manifest",
    "can_watermark",
    "detect_watermark_bgr",
    "embed_watermark_bgr",
    "ensure_identity",
    "read_manifest",
    "sign_asset",
    "stamp_png",
    "verify_bytes",
    "verify_file",
    "watermark_image",
]
