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
from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image, ImageOps
from pydantic import BaseModel, ConfigDict, Field

from genstudio import __version__
from genstudio.config import Settings
from genstudio.errors import LimitError
from genstudio.faceswap.safeguards import (
    FACESWAP_DESCRIPTION,
    FACESWAP_LABEL,
    ConsentIn,
    Corner,
    check_consent,
    open_audit,
    record_consent,
    update_audit,
)
from genstudio.jobs.base import JobCancelled, JobContext, JobFailed, OutputFile
from genstudio.provenance import syncmark, videomark
from genstudio.provenance.stage import Seal
from genstudio.studio import InputFile, StudioContext

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
    enhance: float = Field(default=0.0, ge=0.0, le=1.0,
                           description="face enhancer blend amount, 0 = off (needs GENSTUDIO_FACESWAP_ENHANCER_MODEL)")
    occlusion_mask: bool = Field(default=False, description="keep what is in front of the target's face "
                                                             "(needs GENSTUDIO_FACESWAP_OCCLUDER_MODEL)")
    region_mask: bool = Field(default=False, description="swap only the target's face regions, keep hair and "
                                                          "glasses (needs GENSTUDIO_FACESWAP_PARSER_MODEL)")
    hand_mask: bool = Field(default=False, description="keep the target's hands where they cover the face "
                                                        "(built in: MediaPipe's palm detector and hand landmarks)")
    glasses: Literal["source", "target", "none"] = Field(
        default="source", description="whose glasses the result shows: the source photo's as they are, the "
        "target's (kept on top; the source's taken out), or none (the source's taken out)")
    blend: Literal["feather", "multiband"] = Field(
        default="feather", description="the seam: the mask's feathered edge, or a multi-band (Laplacian "
        "pyramid) blend")
    follow_gaze: bool = Field(default=False, description="put the source's irises where the target's are, so "
                                                          "the result looks where the target looks (built in)")


class DetectRequest(BaseModel):
    """`POST /api/faceswap/detect`: the faces in an image, or in one frame of a video."""

    model_config = ConfigDict(extra="forbid")
    asset: str = Field(max_length=64, description="asset id of an uploaded image or video")
    frame: int | None = Field(default=None, ge=0, le=1_000_000, description="video frame number (default: 0)")


THUMB_SIDE = 96  # px: the longer side of a face thumbnail


def detect_faces(landmarker: Any, bgr: np.ndarray) -> list[dict[str, Any]]:
    """The faces in `bgr` as the swap numbers them: left to right by their landmarks' centre (index 0 is
    the left-most; a request with no index takes the largest). Each: index, box [x, y, w, h], score, and
    a JPEG thumbnail of the face with some margin, and whether it wears glasses (glasses.py)."""
    import base64

    import cv2

    from genstudio.faceswap.engine import MIN_FACE
    from genstudio.faceswap.glasses import has_glasses
    from genstudio.faceswap.landmarks import present

    faces = []
    for det in landmarker.detect(bgr, min_face=MIN_FACE):
        mesh = landmarker.landmarks_from_detection(bgr, det)
        if not present(mesh):
            continue
        pts = mesh.landmarks
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        faces.append((float(pts[:, 0].mean()), det.score, (x0, y0, x1, y1), has_glasses(bgr, pts)))
    faces.sort(key=lambda f: f[0])
    h, w = bgr.shape[:2]
    out = []
    for index, (_cx, score, (x0, y0, x1, y1), glasses) in enumerate(faces):
        mx, my = 0.25 * (x1 - x0), 0.25 * (y1 - y0)
        cx0, cy0 = max(0, int(x0 - mx)), max(0, int(y0 - my))
        cx1, cy1 = min(w, int(np.ceil(x1 + mx))), min(h, int(np.ceil(y1 + my)))
        crop = bgr[cy0:cy1, cx0:cx1]
        k = THUMB_SIDE / max(crop.shape[:2])
        if k < 1:
            crop = cv2.resize(crop, (max(1, round(crop.shape[1] * k)), max(1, round(crop.shape[0] * k))),
                              interpolation=cv2.INTER_AREA)
        ok, jpg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
        box = [round(float(x0)), round(float(y0)), round(float(x1 - x0)), round(float(y1 - y0))]
        out.append({"index": index, "box": box, "score": round(float(score), 3), "glasses": bool(glasses),
                    "thumbnail": "data:image/jpeg;base64," + base64.b64encode(jpg.tobytes()).decode() if ok else None})
    return out


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
    from genstudio.faceswap.label import min_target_size

    least_w, least_h = min_target_size()
    if width < least_w or height < least_h:
        raise LimitError(field, f"{width}x{height} is too small for a legible AI-generated label "
                                f"(at least {least_w}x{least_h} pixels)")
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
    provenance: dict[str, Any],
    tmp_dir: Path,
    progress: Progress | None = None,
) -> tuple[bytes, str, dict[str, Any], Seal]:
    """Swap and label one target (video frames are watermarked as they are written). Returns (file
    bytes, MIME type, stats, the seal for the provenance stage, which marks images and signs both).

    Raises NoFaceError (a ValueError, message "source: ...") when the source shows no face, NothingSwapped
    (a LimitError) when no face of the target was replaced, JobCancelled when `progress` does."""
    from genstudio.faceswap.engine import NoFaceError

    report = progress or (lambda _f: None)
    try:
        swapper.set_source(source_bgr, glasses=options.glasses)
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
        watermark: dict[str, Any] | None = {"method": videomark.METHOD, "bits": syncmark.PAYLOAD_BITS,
                                            "embedded": True, "payload": stats["mark_id"],
                                            "psnr_db": stats.get("mark_psnr_db"), "frames": "every frame"}
        marked_from = None
    else:
        from genstudio.faceswap.engine import swap_image
        from genstudio.faceswap.label import draw_label

        target_bgr = load_bgr(target_path.read_bytes(), "target")
        try:
            swapped, n_swapped = swap_image(swapper, target_bgr, options)
        except NoFaceError as exc:
            raise NothingSwapped("reference", "no face found in the reference photo") from exc
        if n_swapped == 0:
            raise nothing_swapped(options, _faces_in(swapper, target_bgr), "image")
        labelled = draw_label(swapped, corner=label_corner)
        # The stage watermarks these pixels and encodes them once (JPEG for a JPEG target, else PNG).
        marked_from = Image.fromarray(np.ascontiguousarray(labelled[:, :, ::-1]))
        mime = "image/jpeg" if target_mime == "image/jpeg" else "image/png"
        data = b""
        watermark = None
        stats = {
            "frames": 1,
            "faces_swapped": int(n_swapped),
            "width": target_bgr.shape[1],
            "height": target_bgr.shape[0],
        }
        report(0.95)
    stats["source_glasses"] = bool(getattr(swapper, "source_glasses", False))
    source = getattr(swapper, "source", None)
    if source is not None:  # how turned the source face is, and whether its far half was drawn from the near
        stats["source_turn"] = round(float(source.turn), 3)
        stats["source_far_half_mirrored"] = source.src_triangles is not None
    info = {
        "kind": "faceswap",
        "label": {"text": "AI-generated", "corner": label_corner},
        **provenance,
        "stats": {k: v for k, v in stats.items() if isinstance(v, int | float | str | bool)},
    }
    seal = Seal(
        title=f"genstudio face swap {provenance.get('consent_id', '')}".strip(),
        ai_info=info,
        composite=True,
        description=FACESWAP_DESCRIPTION,
        watermark=watermark,
        assertions=[{"label": FACESWAP_LABEL, "data": {"consent_id": provenance.get("consent_id")}}],
        image=marked_from,
    )
    report(1.0)
    return data, mime, stats, seal


def _faces_in(swapper: Any, image_bgr: np.ndarray) -> int:
    """How many faces the engine finds in one image (it swaps them all on a copy to count them)."""
    from genstudio.faceswap.engine import swap_image

    return int(swap_image(swapper, image_bgr, make_options(None, True, None))[1])


def _check_face_models(settings: Settings, **asked: Any) -> None:
    from genstudio.faceswap.face_models import check_face_models

    check_face_models(settings, **asked)


def make_options(target_face: int | None, many_faces: bool, reference_bgr: np.ndarray | None,
                 **models: Any) -> Any:
    """SwapOptions for a request; `models`: enhance, occlusion_mask, region_mask, hand_mask."""
    from genstudio.faceswap.engine import SwapOptions

    return SwapOptions(target_face=target_face, many_faces=many_faces, reference_bgr=reference_bgr, **models)


class FaceSwapParams(BaseModel):
    """A face-swap job's params: inputs by reference (asset ids; files on the command line) and hash,
    never by storage path; the consent record and the audit row the attempt was logged under."""

    source: str
    target: str
    reference: str | None = None
    source_sha256: str
    target_sha256: str
    reference_sha256: str | None = None
    target_kind: Literal["image", "video"]
    target_mime: str
    target_info: dict[str, Any] = Field(default_factory=dict)
    target_face: int | None = None
    many_faces: bool = False
    label_corner: Corner = "bottom-right"
    enhance: float = 0.0
    occlusion_mask: bool = False
    region_mask: bool = False
    hand_mask: bool = False
    glasses: Literal["source", "target", "none"] = "source"
    blend: Literal["feather", "multiband"] = "feather"
    follow_gaze: bool = False
    consent_id: str
    audit_id: str


class FaceModelPullParams(BaseModel):
    """A face-model pull job's params (op "pull"): one .onnx file of a hub repo, registered in the zoo as
    `model_id` when it is a face model."""

    op: Literal["pull"] = "pull"
    repo: str
    file: str
    revision: str | None = None
    name: str | None = None
    model_id: str


AUDIT_MODES = {"api": "job", "cli": "cli", "live": "live"}


class FaceSwapStudio:
    """The "faceswap" studio: consent and audit in `resolve`, one engine (built on first use) in `run`."""

    name: ClassVar[str] = "faceswap"
    media_kinds: ClassVar[tuple[str, ...]] = ("image", "video")
    requests: ClassVar[dict[str, type[BaseModel]]] = {"swap": FaceSwapRequest}
    router: ClassVar[str] = "genstudio.api.routes.faceswap:router"
    cli: ClassVar[str] = "genstudio.cli.faceswap:register"

    def __init__(self, ctx: StudioContext, swapper_factory: Callable[[], Any] | None = None) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self._swapper: Any = None
        self._swapper_key: Any = None
        self._swapper_factory = swapper_factory
        self._lock = threading.Lock()

    @property
    def model_settings(self) -> Settings:
        """The server's settings with the face-model zoo's active models filled in (`models add --kind
        faceswap`): read on each use, so a model added while the server runs is used by the next swap."""
        from genstudio.faceswap.zoo import effective_settings

        return effective_settings(self.ctx.settings)

    @property
    def store(self) -> Any:
        return self.ctx.store

    def detect(self, req: DetectRequest) -> dict[str, Any]:
        """`POST /api/faceswap/detect`: the faces of an image (or of frame `req.frame` of a video), numbered
        as the swap numbers them, each with a thumbnail, so a page can show which face is which."""
        found = self.ctx.inputs.get(req.asset, "asset")
        frame_no = 0
        if found.mime.startswith("video/"):
            from genstudio.faceswap import media

            info = probe_target(found.path, self.settings, "asset")
            frame_no = req.frame or 0
            if frame_no >= max(int(info.frames), 1):
                raise LimitError("frame", f"the video has {info.frames} frames (0-{int(info.frames) - 1})")
            bgr = None
            for i, frame in enumerate(media.read_frames(found.path)):
                if i == frame_no:
                    bgr = frame
                    break
            if bgr is None:
                raise LimitError("frame", f"frame {frame_no} could not be read")
        elif found.mime.startswith("image/"):
            if req.frame:
                raise LimitError("frame", "is for videos; this asset is an image")
            bgr = load_bgr(found.path.read_bytes(), "asset")
            check_side(bgr.shape[1], bgr.shape[0], self.settings, "asset")
        else:
            raise LimitError("asset", f"must be an image or a video; it is {found.mime}")
        with self._lock:
            if getattr(self, "_landmarker", None) is None:
                from genstudio.faceswap.landmarks import FaceLandmarker

                self._landmarker = FaceLandmarker()
            faces = detect_faces(self._landmarker, bgr)  # down to MIN_FACE px, as a swap's first frame
        return {"faces": faces, "frame": frame_no, "width": int(bgr.shape[1]), "height": int(bgr.shape[0]),
                "order": "left to right (index 0 is the left-most); with no index a swap takes the largest face"}

    def swapper(self) -> Any:
        """The engine, built once and again when the models it depends on change."""
        if self._swapper_factory is not None:
            if self._swapper is None:
                self._swapper = self._swapper_factory()
            return self._swapper
        from genstudio.faceswap.zoo import model_key

        settings = self.model_settings
        key = model_key(settings)
        if self._swapper is None or key != self._swapper_key:
            from genstudio.faceswap.engines import make_swapper

            self._swapper, self._swapper_key = make_swapper(settings), key
        return self._swapper

    def models(self) -> list[dict[str, Any]]:
        """The swap engine, every optional face model the settings name and the zoo's models (never their
        server paths)."""
        s = self.model_settings
        engine = {"id": f"faceswap:{s.faceswap_engine}", "name": s.faceswap_engine, "kind": "faceswap",
                  "default": True, "format": s.faceswap_engine,
                  "family": s.faceswap_swap_style if s.faceswap_engine == "onnx" else "builtin",
                  "source": "local" if s.faceswap_engine == "onnx" else "built-in"}
        found = [engine]
        named = self.settings  # the zoo's models are listed as themselves below
        for role, path in (("enhancer", named.faceswap_enhancer_model), ("occluder", named.faceswap_occluder_model),
                           ("parser", named.faceswap_parser_model)):
            if path is None:
                continue
            size = path.stat().st_size if path.is_file() else None
            found.append({"id": f"faceswap:{role}", "name": f"{role} ({path.name})", "kind": "faceswap",
                          "default": False, "format": "onnx", "family": role, "size_bytes": size,
                          "source": "local"})
        from genstudio.faceswap.zoo import FaceModelZoo

        return found + FaceModelZoo(self.settings).public()

    def params(self, raw: dict[str, Any]) -> FaceSwapParams | FaceModelPullParams:
        return FaceModelPullParams(**raw) if raw.get("op") == "pull" else FaceSwapParams(**raw)

    def resolve_pull(self, repo: str, file: str, revision: str | None, name: str | None) -> FaceModelPullParams:
        """`POST /api/models/pull` with kind "faceswap": checked here, fetched by a job (`pull`)."""
        from genstudio.faceswap.zoo import model_id_for

        if not self.settings.allow_hub_downloads:
            raise LimitError("repo", "hub downloads are disabled (GENSTUDIO_ALLOW_HUB_DOWNLOADS=false)")
        return FaceModelPullParams(repo=repo, file=file, revision=revision, name=name,
                                   model_id=model_id_for(name or Path(file).stem))

    def pull(self, params: FaceModelPullParams, job: JobContext | None = None) -> list[OutputFile]:
        """A pull job: progress is the fraction of bytes fetched; its output is the registered model (no
        asset). A cancel stops the download."""
        from genstudio.faceswap.zoo import FaceModelZoo, ZooError

        def bytes_done(done: int, total: int) -> None:
            if job is not None and total:
                job.progress(min(done / total, 0.999), f"{done}/{total} bytes")

        try:
            FaceModelZoo(self.settings).pull(params.repo, params.file, revision=params.revision,
                                                 name=params.name, progress=bytes_done)
        except ZooError as exc:
            raise JobFailed(str(exc).removeprefix("repo: ")) from exc
        return []

    def inspect(self, data: bytes, fmt: str, mime: str | None) -> dict[str, Any] | None:
        from genstudio.faceswap.verify_media import inspect

        return inspect(data, fmt, mime)

    # ------------------------------------------------------------------ resolve: consent, limits, audit

    def _image_input(self, ref: str, field: str) -> InputFile:
        found = self.ctx.inputs.get(ref, field)
        if not found.mime.startswith("image/"):
            what = f"asset {ref}" if found.asset_id else found.path.name
            raise LimitError(field, f"must be an image (PNG, JPEG or WebP); {what} is {found.mime}")
        return found

    def _target(self, ref: str) -> tuple[InputFile, str, dict[str, Any]]:
        target = self.ctx.inputs.get(ref, "target")
        if target.mime.startswith("video/"):
            info = probe_target(target.path, self.settings, "target")
            return target, "video", {"width": info.width, "height": info.height, "frames": info.frames,
                                     "duration_s": info.duration_s}
        if target.mime.startswith("image/"):
            try:
                with Image.open(target.path) as im:
                    width, height = im.size
            except Exception as exc:  # noqa: BLE001 - PIL raises many types for broken files
                raise LimitError("target", f"not a decodable image ({type(exc).__name__})") from exc
            check_side(width, height, self.settings, "target")
            return target, "image", {"width": width, "height": height, "frames": 1}
        what = f"asset {ref}" if target.asset_id else target.path.name
        raise LimitError("target", f"must be an image or a video; {what} is {target.mime}")

    def resolve(self, request: BaseModel, op: str | None = None) -> FaceSwapParams:
        """Check consent, the face choice and the inputs; record the consent and open the audit row.
        A refused attempt is audited too (outcome "refused", with the reason), then re-raised."""
        assert isinstance(request, FaceSwapRequest)
        mode = AUDIT_MODES.get(self.ctx.channel, "job")
        seen: dict[str, InputFile] = {}
        try:
            consent = check_consent(request.consent, self.settings)
            check_choice(request.target_face, request.many_faces, request.reference)
            _check_face_models(self.model_settings, enhance=request.enhance, occlusion_mask=request.occlusion_mask,
                               region_mask=request.region_mask, hand_mask=request.hand_mask,
                               follow_gaze=request.follow_gaze)
            seen["source"] = self._image_input(request.source, "source")
            target, target_kind, target_info = self._target(request.target)
            seen["target"] = target
            if request.reference is not None:
                seen["reference"] = self._image_input(request.reference, "reference")
        except LimitError as exc:
            self.audit_refusal(request, str(exc), mode, seen)
            raise
        source, reference = seen["source"], seen.get("reference")
        consent_row = record_consent(self.store, consent, recorded_by=self.ctx.actor, source_sha256=source.sha256)
        audit = open_audit(
            self.store,
            actor=self.ctx.actor,
            mode=mode,
            consent_id=consent_row.id,
            source_asset_id=source.asset_id,
            target_asset_id=target.asset_id,
            reference_asset_id=reference.asset_id if reference else None,
            source_sha256=source.sha256,
            target_sha256=target.sha256,
            reference_sha256=reference.sha256 if reference else None,
        )
        return FaceSwapParams(
            source=source.ref,
            target=target.ref,
            reference=reference.ref if reference else None,
            source_sha256=source.sha256,
            target_sha256=target.sha256,
            reference_sha256=reference.sha256 if reference else None,
            target_kind=target_kind,  # type: ignore[arg-type]
            target_mime=target.mime,
            target_info=target_info,
            target_face=request.target_face,
            many_faces=request.many_faces,
            label_corner=request.label_corner,
            enhance=request.enhance,
            occlusion_mask=request.occlusion_mask,
            region_mask=request.region_mask,
            hand_mask=request.hand_mask,
            glasses=request.glasses,
            blend=request.blend,
            follow_gaze=request.follow_gaze,
            consent_id=consent_row.id,
            audit_id=audit.id,
        )

    def resolve_live(self, request: FaceSwapRequest) -> tuple[ConsentIn, InputFile]:
        """Live mode's checks (it has no target file): consent, face choice, the source photo; a refusal
        is audited like a job's."""
        seen: dict[str, InputFile] = {}
        try:
            consent = check_consent(request.consent, self.settings)
            check_choice(request.target_face, request.many_faces, request.reference)
            _check_face_models(self.model_settings, enhance=request.enhance, occlusion_mask=request.occlusion_mask,
                               region_mask=request.region_mask, hand_mask=request.hand_mask,
                               follow_gaze=request.follow_gaze)
            seen["source"] = self._image_input(request.source, "source")
        except LimitError as exc:
            self.audit_refusal(request, str(exc), "live", seen)
            raise
        return consent, seen["source"]

    def audit_refusal(self, request: Any, reason: str, mode: str, seen: dict[str, InputFile] | None = None) -> None:
        """One audit row for an attempt refused before it ran: who, what it named, why."""
        seen = seen or {}
        consent = getattr(request, "consent", None)
        open_audit(
            self.store,
            actor=self.ctx.actor,
            mode=mode,
            consent_id=None,
            source_asset_id=seen["source"].asset_id if "source" in seen else None,
            target_asset_id=seen["target"].asset_id if "target" in seen else None,
            source_sha256=seen["source"].sha256 if "source" in seen else "",
            target_sha256=seen["target"].sha256 if "target" in seen else "",
            outcome="refused",
            error=reason[:500],
            stats={"subject_given": bool(consent and consent.subject.strip()),
                   "statement_chars": len(consent.statement) if consent else 0},
        )

    # ------------------------------------------------------------------ run

    def run(self, params: BaseModel, job: JobContext | None = None) -> list[OutputFile]:
        """Swap, label and mark; sealed here (not left to the runtime) so that the audit row records the
        hash of the very file the user gets."""
        from genstudio.faceswap.engine import NoFaceError

        if isinstance(params, FaceModelPullParams):
            return self.pull(params, job)
        assert isinstance(params, FaceSwapParams)
        p = params
        progress = job.progress if job is not None else None
        job_id = getattr(getattr(job, "job", None), "id", None)
        update_audit(self.store, p.audit_id, outcome="running", **({"job_id": job_id} if job_id else {}))
        try:
            source = self._run_input(p.source, "source")
            target = self._run_input(p.target, "target")
            reference = self._run_input(p.reference, "reference") if p.reference else None
            source_bgr = load_bgr(source.read(), "source")
            reference_bgr = load_bgr(reference.read(), "reference") if reference else None
            engine = self.model_settings.faceswap_engine
            models = {"enhance": p.enhance, "occlusion_mask": p.occlusion_mask, "region_mask": p.region_mask,
                      "hand_mask": p.hand_mask, "glasses": p.glasses, "blend": p.blend,
                      "follow_gaze": p.follow_gaze}
            options = make_options(p.target_face, p.many_faces, reference_bgr, **models)
            provenance = {
                "consent_id": p.consent_id,
                "audit_id": p.audit_id,
                "inputs": {
                    "source_sha256": p.source_sha256,
                    "target_sha256": p.target_sha256,
                    "reference_sha256": p.reference_sha256,
                },
                "options": {"target_face": p.target_face, "many_faces": p.many_faces, **models},
                "engine": engine,
                "software": f"genstudio {__version__}",
            }
            with self._lock:  # one engine, one job at a time
                try:
                    data, mime, stats, seal = swap_to_bytes(
                        self.swapper(),
                        source_bgr=source_bgr,
                        target_path=target.path,
                        target_kind=p.target_kind,
                        target_mime=p.target_mime,
                        options=options,
                        label_corner=p.label_corner,
                        provenance=provenance,
                        tmp_dir=self.settings.data_dir / "tmp",
                        progress=progress,
                    )
                except NoFaceError as exc:
                    raise JobFailed(no_face_message(exc, "source")) from exc
            data = self.ctx.stage.seal(data, mime, seal)
        except JobCancelled:
            update_audit(self.store, p.audit_id, outcome="cancelled", error="cancelled")
            raise
        except LimitError as exc:
            update_audit(self.store, p.audit_id, outcome="failed", error=str(exc))
            raise JobFailed(str(exc)) from exc
        except BaseException as exc:
            update_audit(self.store, p.audit_id, outcome="failed", error=str(exc) or type(exc).__name__)
            raise
        digest = hashlib.sha256(data).hexdigest()
        update_audit(self.store, p.audit_id, outcome="succeeded", output_sha256=digest, stats=_plain(stats))
        kind = "video" if mime == "video/mp4" else "image"
        public = {
            "faceswap": True,
            "consent_id": p.consent_id,
            "audit_id": p.audit_id,
            "source": p.source if not p.source.startswith("file:") else None,
            "target": p.target if not p.target.startswith("file:") else None,
            "reference": p.reference if p.reference and not p.reference.startswith("file:") else None,
            "target_face": p.target_face,
            "many_faces": p.many_faces,
            "enhance": p.enhance,
            "occlusion_mask": p.occlusion_mask,
            "region_mask": p.region_mask,
            "hand_mask": p.hand_mask,
            "glasses": p.glasses,
            "blend": p.blend,
            "follow_gaze": p.follow_gaze,
            "label_corner": p.label_corner,
            "engine": engine,
            "inputs": provenance["inputs"],
            "stats": _plain(stats),
        }
        return [OutputFile(data=data, mime=mime, kind=kind, params=public)]

    def _run_input(self, ref: str, field: str) -> InputFile:
        try:
            return self.ctx.inputs.get(ref, field)
        except LimitError as exc:
            raise JobFailed(f"{field}: the uploaded file is gone (deleted, or removed by the retention period)") \
                from exc


def _plain(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stats.items() if isinstance(v, int | float | str | bool) or v is None}
