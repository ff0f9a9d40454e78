"""The provenance stage: every studio's outputs go through it at job time, with one signing identity.

A studio describes each output with a `Seal` (what made it, the title, a mark it already embedded);
the stage writes the marks and signs: images get the invisible watermark, their text chunks and a
C2PA manifest; videos (watermarked frame by frame by the engine, `videomark`) and WAV audio a C2PA manifest; MIDI
a signed manifest in a track of its own (C2PA has no MIDI binding)."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from genstudio.provenance import audiomark, syncmark
from genstudio.provenance.identity import SigningIdentity
from genstudio.provenance.manifest import WATERMARK_LABEL, build_manifest, read_manifest, sign_asset
from genstudio.provenance.midi_signature import sign_midi
from genstudio.provenance.stamp import encode_png, watermark_image, watermark_wav
from genstudio.provenance.store import ManifestStore

IMAGE_TYPES = ("image/png", "image/jpeg")
C2PA_TYPES = ("video/mp4", "audio/wav")


@dataclass
class Seal:
    """What a studio says about one output, for the stage to write into it."""

    title: str
    ai_info: dict[str, Any]
    composite: bool = False  # real media changed by a model (face swap), not made from nothing
    description: str | None = None
    watermark: dict[str, Any] | None = None  # a mark the studio embedded itself (video frames)
    text_chunks: dict[str, str] = field(default_factory=dict)  # PNG text (A1111 `parameters`, ...)
    assertions: list[dict[str, Any]] = field(default_factory=list)
    image: Image.Image | None = None  # pixels to mark and encode, instead of decoding the output's bytes
    jpeg_quality: int = 95


def soft_binding(mark_id: str, alg: str = syncmark.SOFT_BINDING_ALG) -> dict[str, Any]:
    """C2PA's soft-binding assertion: the watermark that binds this manifest to copies of the asset that
    lost it (the value is the mark's payload, base64, as the specification's `blocks[].value`)."""
    value = base64.b64encode(bytes.fromhex(mark_id)).decode()
    return {"label": "c2pa.soft-binding", "data": {"alg": alg,
                                                    "blocks": [{"scope": {}, "value": value}]}}


def seal_bytes(data: bytes, mime: str, seal: Seal, identity: SigningIdentity,
               manifests: ManifestStore | None = None) -> bytes:
    """The output's final bytes: marked where the format allows, then signed; a watermarked output's
    manifest is also kept in `manifests`, under the id its mark carries."""
    extra = list(seal.assertions)
    mark_id = None
    if mime in IMAGE_TYPES:
        image = seal.image
        if image is None:
            with Image.open(io.BytesIO(data)) as im:
                image = im.copy()
        marked, record = watermark_image(image)
        extra.insert(0, {"label": WATERMARK_LABEL, "data": record})
        if record.get("embedded"):
            mark_id = record["payload"]
            extra.insert(1, soft_binding(mark_id))
        if mime == "image/png":
            data = encode_png(marked, seal.text_chunks)
        else:
            buf = io.BytesIO()
            marked.convert("RGB").save(buf, "JPEG", quality=seal.jpeg_quality)
            data = buf.getvalue()
    elif mime == "audio/wav":
        data, record = watermark_wav(data)
        extra.insert(0, {"label": WATERMARK_LABEL, "data": record})
        if record.get("embedded"):
            mark_id = record["payload"]
            extra.insert(1, soft_binding(mark_id, audiomark.SOFT_BINDING_ALG))
    elif seal.watermark is not None:
        extra.insert(0, {"label": WATERMARK_LABEL, "data": seal.watermark})
        if seal.watermark.get("embedded") and seal.watermark.get("method") == syncmark.METHOD:
            mark_id = str(seal.watermark["payload"])  # video frames marked by the studio (videomark)
            extra.insert(1, soft_binding(mark_id))
    manifest = build_manifest(title=seal.title, mime=mime, ai_info=seal.ai_info, extra_assertions=extra,
                              composite=seal.composite, description=seal.description)
    if mime in IMAGE_TYPES or mime in C2PA_TYPES:
        signed = sign_asset(data, mime=mime, manifest=manifest, identity=identity)
        if manifests is not None and mark_id is not None:
            manifests.put(mark_id, read_manifest(signed, mime=mime))
        return signed
    if mime == "audio/midi":
        return sign_midi(data, manifest=manifest, identity=identity)
    raise ValueError(f"the provenance stage has no binding for {mime}")


class ProvenanceStage:
    """Seals outputs that carry a `seal` (jobs.base.OutputFile) with one identity, loaded on first use."""

    def __init__(self, identity: Callable[[], SigningIdentity], manifests: ManifestStore | None = None) -> None:
        self._identity_factory = identity
        self._identity: SigningIdentity | None = None
        self.manifests = manifests

    @property
    def identity(self) -> SigningIdentity:
        if self._identity is None:
            self._identity = self._identity_factory()
        return self._identity

    def seal(self, data: bytes, mime: str, seal: Seal) -> bytes:
        return seal_bytes(data, mime, seal, self.identity, self.manifests)

    def __call__(self, outputs: Sequence[Any]) -> list[Any]:
        sealed = []
        for out in outputs:
            if getattr(out, "seal", None) is not None:
                out = replace(out, data=self.seal(out.data, out.mime, out.seal), seal=None)
            sealed.append(out)
        return sealed
