"""The face-swap studio as a job: checks a request against the limits, runs the engine, and stamps
every output (visible label, invisible watermark, signed C2PA manifest). Shared by the API and the CLI."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from pydantic import BaseModel, ConfigDict, Field

from genstudio import __version__
from genstudio.config import Settings
from genstudio.faceswap.safeguards import (
    FACESWAP_LABEL,
    ConsentIn,
    Corner,
    faceswap_manifest,
    update_audit,
)
from genstudio.image.params import LimitError
from genstudio.jobs.base import JobCancelled, JobContext, JobFailed, OutputFile

Progress = Callable[[float], None]
MAX_TARGET_FACE = 63


class FaceSwapRequest(BaseModel):
    """`POST /api/faceswap`: put the face in `source` onto the person(s) in `target`."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(max_length=64, description="asset id of the face photo (an uploaded image)")
    target: str = Field(max_length=64, description="asset id of the image or MP4 video to change")
    consent: ConsentIn | None = None
    target_face: int | None = Field(default=None, ge=0, le=MAX_TARGET_FACE)
    many_faces: bool = False
    reference: str | None = Field(default=None, max_length=64, description="asset id of a photo of the face to replace")
    label_corner: Corner = "bottom-right"


class NothingSwapped(LimitError):
    """The target has no face to replace, or not the one the request picked; `field` names what picked it."""


def no_face_message(exc: BaseException, field: str = "source") -> str:
    """The engine's "no face" error as one `field: ...` message (the engine's own text says the same, once)."""
    message = str(exc).splitlines()[0] if str(exc) else ""
    return message if message.startswith(f"{field}:") else f"{field}: no face found in the {field} photo"


def nothing_swapped(options: Any, faces_seen: int | None, what: str) -> NothingSwapped:
    """Why a swap changed no face, naming the request field that chose the face."""
    if options.target_face is not None:
        shows = f" (it shows {faces_seen} face(s))" if faces_seen is not None else ""
        return NothingSwapped("target_face", f"no face {options.target_face} in the target{shows}")
    if options.reference_bgr is not None and faces_seen:  # faces there, none taken for the reference's
        return NothingSwapped("reference", "no face in the target matches the reference photo")
    if what == "image":
        return NothingSwapped("target", "no face to replace was found in the target image")
    return NothingSwapped("target", f"no face found in the target {what}")


def check_choice(target_face: int | None, many_faces: bool, reference: Any) -> None:
    if many_faces and (target_face is not None or reference is not None):
        raise LimitError("many_faces", "replace every face, or pick one with target_face or reference; not both")
    if target_face is not None and reference is not None:
        raise LimitError("target_face", "pick the face by index or by reference photo, not both")


def check_video_limits(info: Any, settings: Settings, field: str = "target") -> None:
    """LimitError naming `field` and the setting when a probed video is over a limit."""
    if info.frames <= 0 or info.width <= 0 or info.height <= 0:
        raise LimitError(field, "the video has no frames")
    if info.duration_s > settings.faceswap_max_video_seconds:
        raise LimitError(
            field,
            f"video of {info.duration_s:.1f} s is over the limit of {settings.faceswap_max_video_seconds:g} s "
            "(GENSTUDIO_FACESWAP_MAX_VIDEO_SECONDS)",
        )
    if info.frames > settings.faceswap_max_frames:
        raise LimitError(
            field,
            f"video of {info.frames} frames is over the limit of {settings.faceswap_max_frames} frames "
            "(GENSTUDIO_FACESWAP_MAX_FRAMES)",
        )
    check_side(info.width, info.height, settings, field)


def check_side(width: int, height: int, settings: Settings, field: str) -> None:
    if max(width, height) > settings.faceswap_max_side:
        raise LimitError(
            field,
            f"{width}x{height} is over the limit of {settings.faceswap_max_side} pixels a side "
            "(GENSTUDIO_FACESWAP_MAX_SIDE)",
        )


def load_bgr(data: bytes, field: str) -> np.ndarray:
    """An image file's pixels as BGR uint8, upright (EXIF orientation applied)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for broken files
        raise LimitError(field, f"not a decodable image ({type(exc).__name__})") from exc
    return np.ascontiguousarray(rgb[:, :, ::-1])


def probe_target(path: Path, settings: Settings, field: str = "target") -> Any:
    """Probe a target video and check it against the limits."""
    from genstudio.faceswap import media

    try:
        info = media.probe(path)
    except Exception as exc:  # noqa: BLE001 - ffmpeg says many things about a file it cannot read
        raise LimitError(
            field, f"not a decodable video ({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})"
        ) from exc
    check_video_limits(info, settings, field)
    return info


def _write_tmp(tmp_dir: Path, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(dir=tmp_dir, suffix=suffix)
    os.close(fd)
    return Path(name)


def swap_to_bytes(
    swapper: Any,
    *,
    source_bgr: np.ndarray,
    target_path: Path,
    target_kind: str,
    target_mime: str,
    options: Any,
    label_corner: str,
    identity: Any,
    provenance: dict[str, Any],
    tmp_dir: Path,
    progress: Progress | None = None,
) -> tuple[bytes, str, dict[str, Any]]:
    """Swap, label, watermark and sign one target. Returns (file bytes, MIME type, stats).

    Raises NoFaceError (a ValueError, message "source: ...") when the source shows no face, NothingSwapped
    (a LimitError) when no face of the target was replaced, JobCancelled when `progress` does."""
    from genstudio.faceswap.engine import NoFaceError

    report = progress or (lambda _f: None)
    try:
        swapper.set_source(source_bgr)
    except NoFaceError as exc:
        raise NoFaceError(no_face_message(exc, "source")) from exc
    report(0.02)
    if target_kind == "video":
        from genstudio.faceswap.pipeline import swap_video

        out = _write_tmp(tmp_dir, ".mp4")
        try:
            try:
                stats = swap_video(
                    swapper,
                    target_path,
                    out,
                    options,
                    label_corner=label_corner,
                    watermark=True,
                    progress=lambda f: report(0.02 + 0.93 * f),
                )
            except NoFaceError as exc:  # the source is set: only the reference photo is left to lack a face
                raise NothingSwapped("reference", "no face found in the reference photo") from exc
            if not stats.get("faces_swapped_frames", stats.get("faces_swapped", 0)):
                raise nothing_swapped(options, stats.get("faces_seen"), "video")
            data = out.read_bytes()
        finally:
            out.unlink(missing_ok=True)
        mime = "video/mp4"
        watermark = {"method": "video_watermark", "embedded": True}
    else:
        from genstudio.faceswap.engine import swap_image
        from genstudio.faceswap.label import draw_label
        from genstudio.provenance.stamp import watermark_image

        target_bgr = load_bgr(target_path.read_bytes(), "target")
        try:
            swapped, n_swapped = swap_image(swapper, target_bgr, options)
        except NoFaceError as exc:
            raise NothingSwapped("reference", "no face found in the reference photo") from exc
        if n_swapped == 0:
            raise nothing_swapped(options, _faces_in(swapper, target_bgr), "image")
        labelled = draw_label(swapped, corner=label_corner)
        marked, watermark = watermark_image(Image.fromarray(np.ascontiguousarray(labelled[:, :, ::-1])))
        buf = io.BytesIO()
        if target_mime == "image/jpeg":
            mime = "image/jpeg"
            marked.save(buf, "JPEG", quality=95)
        else:
            mime = "image/png"
            marked.save(buf, "PNG")
        data = buf.getvalue()
        stats = {
            "frames": 1,
            "faces_swapped": int(n_swapped),
            "width": target_bgr.shape[1],
            "height": target_bgr.shape[0],
        }
        report(0.95)
    from genstudio.provenance.manifest import sign_asset

    info = {
        "kind": "faceswap",
        "label": {"text": "AI-generated", "corner": label_corner},
        **provenance,
        "stats": {k: v for k, v in stats.items() if isinstance(v, int | float | str | bool)},
    }
    manifest = faceswap_manifest(
        title=f"genstudio face swap {provenance.get('consent_id', '')}".strip(),
        mime=mime,
        info=info,
        watermark=watermark,
    )
    manifest["assertions"].append({"label": FACESWAP_LABEL, "data": {"consent_id": provenance.get("consent_id")}})
    signed = sign_asset(data, mime=mime, manifest=manifest, identity=identity)
    report(1.0)
    return signed, mime, stats


def _faces_in(swapper: Any, image_bgr: np.ndarray) -> int:
    """How many faces the engine finds in one image (it swaps them all on a copy to count them)."""
    from genstudio.faceswap.engine import swap_image

    return int(swap_image(swapper, image_bgr, make_options(None, True, None))[1])


def make_options(target_face: int | None, many_faces: bool, reference_bgr: np.ndarray | None) -> Any:
    from genstudio.faceswap.engine import SwapOptions

    return SwapOptions(target_face=target_face, many_faces=many_faces, reference_bgr=reference_bgr)


class FaceSwapStudio:
    """The "faceswap" job handler: one engine built on first use and kept for later jobs."""

    def __init__(self, settings: Settings, store: Any = None, swapper_factory: Callable[[], Any] | None = None) -> None:
        self.settings = settings
        self._store = store
        self._swapper: Any = None
        self._swapper_factory = swapper_factory
        self._identity: Any = None
        self._lock = threading.Lock()

    @property
    def store(self) -> Any:
        if self._store is None:
            from genstudio.storage.db import Store, make_engine

            self._store = Store(make_engine(self.settings.db_url))
        return self._store

    def swapper(self) -> Any:
        if self._swapper is None:
            if self._swapper_factory is not None:
                self._swapper = self._swapper_factory()
            else:
                from genstudio.faceswap.engines import make_swapper

                self._swapper = make_swapper(self.settings)
        return self._swapper

    def identity(self) -> Any:
        if self._identity is None:
            from genstudio.provenance import ensure_identity

            self._identity = ensure_identity(self.settings.keys_dir)
        return self._identity

    def _input(self, asset_id: str | None, field: str) -> Path | None:
        """The file of an uploaded asset, looked up here so that no storage path rides in the job's params."""
        if asset_id is None:
            return None
        asset = self.store.get_asset(asset_id)
        path = (self.settings.assets_dir / asset.path).resolve() if asset is not None else None
        if path is None or not path.is_relative_to(self.settings.assets_dir.resolve()) or not path.is_file():
            raise JobFailed(f"{field}: the uploaded file is gone (deleted, or removed by the retention period)")
        return path

    def handle(self, ctx: JobContext) -> list[OutputFile]:
        from genstudio.faceswap.engine import NoFaceError

        p = ctx.job.params
        audit_id = p["audit_id"]
        update_audit(self.store, audit_id, outcome="running", job_id=ctx.job.id)
        try:
            source = self._input(p["source"], "source")
            target = self._input(p["target"], "target")
            reference = self._input(p.get("reference"), "reference")
            assert source is not None and target is not None
            source_bgr = load_bgr(source.read_bytes(), "source")
            reference_bgr = load_bgr(reference.read_bytes(), "reference") if reference else None
            options = make_options(p.get("target_face"), bool(p.get("many_faces")), reference_bgr)
            provenance = {
                "consent_id": p["consent_id"],
                "audit_id": audit_id,
                "inputs": {
                    "source_sha256": p["source_sha256"],
                    "target_sha256": p["target_sha256"],
                    "reference_sha256": p.get("reference_sha256"),
                },
                "options": {"target_face": p.get("target_face"), "many_faces": bool(p.get("many_faces"))},
                "engine": self.settings.faceswap_engine,
                "software": f"genstudio {__version__}",
            }
            with self._lock:  # one engine, one job at a time
                try:
                    data, mime, stats = swap_to_bytes(
                        self.swapper(),
                        source_bgr=source_bgr,
                        target_path=target,
                        target_kind=p["target_kind"],
                        target_mime=p["target_mime"],
                        options=options,
                        label_corner=p.get("label_corner", "bottom-right"),
                        identity=self.identity(),
                        provenance=provenance,
                        tmp_dir=self.settings.data_dir / "tmp",
                        progress=ctx.progress,
                    )
                except NoFaceError as exc:
                    raise JobFailed(no_face_message(exc, "source")) from exc
        except JobCancelled:
            update_audit(self.store, audit_id, outcome="cancelled", error="cancelled")
            raise
        except LimitError as exc:
            update_audit(self.store, audit_id, outcome="failed", error=str(exc))
            raise JobFailed(str(exc)) from exc
        except BaseException as exc:
            update_audit(self.store, audit_id, outcome="failed", error=str(exc) or type(exc).__name__)
            raise
        digest = hashlib.sha256(data).hexdigest()
        update_audit(self.store, audit_id, outcome="succeeded", output_sha256=digest, stats=_plain(stats))
        kind = "video" if mime == "video/mp4" else "image"
        params = {
            "faceswap": True,
            "consent_id": p["consent_id"],
            "audit_id": audit_id,
            "source": p["source"],
            "target": p["target"],
            "reference": p.get("reference"),
            "target_face": p.get("target_face"),
            "many_faces": bool(p.get("many_faces")),
            "label_corner": p.get("label_corner", "bottom-right"),
            "engine": self.settings.faceswap_engine,
            "inputs": provenance["inputs"],
            "stats": _plain(stats),
        }
        return [OutputFile(data=data, mime=mime, kind=kind, params=params)]


def _plain(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stats.items() if isinstance(v, int | float | str | bool) or v is None}
