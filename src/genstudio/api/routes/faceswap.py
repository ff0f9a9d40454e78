"""Face-swap studio routes: swap jobs (consent required), the audit log, consent records, live mode."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from genstudio.api.deps import State
from genstudio.api.schemas import AuditPage, ConsentOut, FaceSwapAccepted
from genstudio.api.security import origin_refusal
from genstudio.errors import GoneError, LimitError
from genstudio.faceswap.safeguards import (
    audit_page,
    consent_json,
    get_consent,
    open_audit,
    record_consent,
    update_audit,
)
from genstudio.faceswap.studio import DetectRequest, FaceSwapRequest
from genstudio.jobs.base import QueueFull
from genstudio.studio import InputFile

router = APIRouter(prefix="/api/faceswap", tags=["faceswap"])
LIVE_SUBPROTOCOL = "genstudio.live"


@router.post("", status_code=202)
async def create_faceswap(req: FaceSwapRequest, state: State) -> FaceSwapAccepted:
    """Queue a swap. The studio checks consent and the inputs, records the consent and audits the attempt
    (refused ones too)."""
    studio = state.studios["faceswap"]
    params = await run_in_threadpool(studio.resolve, req)  # probes a target video with ffmpeg
    try:
        job = state.submit("faceswap", params)
    except QueueFull:
        # Unlike the other studios, a refused face swap stays on record: the audit log (and its consent)
        # shows every attempt, let in or not.
        update_audit(state.store, params.audit_id, outcome="refused", error="queue full")
        raise
    update_audit(state.store, params.audit_id, job_id=job.id)
    return FaceSwapAccepted(job_id=job.id, consent_id=params.consent_id, audit_id=params.audit_id)


@router.post("/detect")
async def detect_faces(req: DetectRequest, state: State) -> dict[str, Any]:
    """The faces in an uploaded image or one frame of a video: index (as `target_face` numbers them: left to
    right), box [x, y, w, h], score and a thumbnail, so the choice can be made by looking."""
    return await run_in_threadpool(state.studios["faceswap"].detect, req)


@router.get("/options")
def faceswap_options(state: State) -> dict[str, Any]:
    """What this studio can do beyond the swap: which optional face models (enhancer, occlusion mask,
    region mask) are configured or registered, the parser's regions, and the engine."""
    from genstudio.faceswap.face_models import face_models_info

    return face_models_info(state.studios["faceswap"].model_settings)


@router.get("/audit")
def audit(
    state: State,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[str | None, Query(max_length=64)] = None,
) -> AuditPage:
    """Every face swap, newest first: who, when, consent, input and output hashes, outcome."""
    items, nxt = audit_page(state.store, limit, before)
    return AuditPage(items=items, next=nxt)


@router.get("/consents/{consent_id}")
def consent(consent_id: str, state: State) -> ConsentOut:
    row = get_consent(state.store, consent_id) if consent_id.isalnum() else None
    if row is None:
        raise HTTPException(404, detail=f"consent_id: no consent record {consent_id!r}")
    return ConsentOut(**consent_json(row))


# ---------------------------------------------------------------- live mode


class LiveSession:
    """One webcam session: its own engine and track, frames swapped in a worker thread."""

    def __init__(self, settings: Any, source_bgr: Any, options: Any, label_corner: str) -> None:
        from genstudio.faceswap.live_camera import start_live

        self.settings = settings
        # Every frame of the session carries the same mark id.
        self.swapper, self.track, self.marker = start_live(settings, source_bgr, options)
        self.label_corner = label_corner

    def process(self, jpeg: bytes) -> tuple[bytes, int]:
        import io
        import warnings

        import cv2
        import numpy as np
        from PIL import Image

        from genstudio.faceswap.live_camera import live_frame

        side = self.settings.faceswap_live_max_side
        too_large = ("frame: {} is too large to decode; live frames are scaled to {} pixels per side "
                     "(GENSTUDIO_FACESWAP_LIVE_MAX_SIDE)")
        try:  # the size from the header (PIL opens lazily): a few bytes can claim 12000x12000
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(jpeg)) as im:
                    (w, h), fmt = im.size, im.format
        except Image.DecompressionBombError:
            raise ValueError(too_large.format("the image", side)) from None
        except Exception:  # noqa: BLE001 - PIL raises many types for broken files
            raise ValueError("frame: not a decodable JPEG") from None
        # A large JPEG is decoded at 1/2, 1/4 or 1/8 size (libjpeg scales while decoding), never in full.
        factor = next((f for f in (8, 4, 2) if fmt == "JPEG" and max(w, h) / f >= side), 1)
        if (w // factor) * (h // factor) > (2 * side) ** 2:
            raise ValueError(too_large.format(f"{w}x{h}", side))
        flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
        frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), flag)
        if frame is None:
            raise ValueError("frame: not a decodable JPEG")
        h, w = frame.shape[:2]
        if max(h, w) > side:
            scale = side / max(h, w)
            frame = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        out, n = live_frame(self.swapper, self.track, self.marker, frame, self.label_corner)
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if not ok:
            raise ValueError("frame: could not encode the result")
        return buf.tobytes(), int(n)


async def _live_error(ws: WebSocket, detail: str, code: int = 4422) -> None:
    await ws.send_json({"type": "error", "detail": detail})
    await ws.close(code=code)


HELLO = "first message: must be a JSON object {source, consent, ...}"


def _hello(message: dict[str, Any]) -> dict[str, Any]:
    """The first message as a dict, or a ValueError saying what is wrong with it."""
    text = message.get("text")
    if text is None:
        raise ValueError(f"{HELLO} sent as text; this one is binary")
    try:
        hello = json.loads(text)
    except ValueError:
        raise ValueError(f"{HELLO}; this one is not valid JSON") from None
    except RecursionError:
        raise ValueError(f"{HELLO}; this one is nested too deeply") from None
    if not isinstance(hello, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(hello), "a number")
        raise ValueError(f"{HELLO}; this one is {kind}")
    return hello


@router.websocket("/live")
async def live(ws: WebSocket) -> None:
    """Webcam mode. First message (JSON): {"source": asset_id, "consent": {...}, "target_face",
    "many_faces", "label_corner"}; the server answers {"type": "ready", "consent_id", "audit_id"}.
    Then each binary message is a JPEG frame, answered by the swapped, labelled JPEG (binary) and a
    {"type": "stats", "fps", "faces", "frames", "no_face"} message ("no_face": no face was swapped in it)."""
    offered = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    # Accepted before any check: a refusal at the handshake reaches a browser as a bare failure (HTTP 403),
    # a close after it carries its code and reason.
    await ws.accept(subprotocol=LIVE_SUBPROTOCOL if LIVE_SUBPROTOCOL in offered else None)
    refusal = origin_refusal(ws.headers, ws.app.state.genstudio.settings)
    if refusal:
        # Browsers let any page open a WebSocket anywhere; only pages of an allowed host may use the camera link.
        await ws.close(code=4403, reason=refusal)
        return
    state = ws.app.state.genstudio
    try:
        first = await asyncio.wait_for(ws.receive(), timeout=30)
        if first["type"] == "websocket.disconnect":
            return
        hello = _hello(first)
        req = FaceSwapRequest.model_validate({"target": "live", **hello})
        studio = state.studios["faceswap"]
        consent, source = await run_in_threadpool(studio.resolve_live, req)  # refusals are audited there
    except (ValueError, ValidationError, LimitError) as exc:
        if isinstance(exc, ValidationError):
            err = exc.errors()[0]
            detail = f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}"
            if any(str(x) == "consent" for x in err["loc"]):  # a malformed consent is a refused attempt too
                state.studios["faceswap"].audit_refusal(None, detail, "live")
        else:
            detail = str(exc)
        await _live_error(ws, detail, 4410 if isinstance(exc, GoneError) else 4422)
        return
    except (TimeoutError, WebSocketDisconnect):
        return
    limit = state.settings.faceswap_live_max_sessions
    if _live_sessions.get(id(state), 0) >= limit:
        await _live_error(
            ws, f"live: at most {limit} live sessions at once (GENSTUDIO_FACESWAP_LIVE_MAX_SESSIONS)", 4429
        )
        return
    _live_sessions[id(state)] = _live_sessions.get(id(state), 0) + 1
    try:
        await _live_session(ws, state, req, consent, source)
    finally:
        _live_sessions[id(state)] -= 1


async def _live_session(ws: WebSocket, state: Any, req: FaceSwapRequest, consent: Any, source: InputFile) -> None:
    from genstudio.faceswap.engine import NoFaceError
    from genstudio.faceswap.studio import load_bgr, make_options, no_face_message

    actor = state.studios.ctx.actor
    studio = state.studios["faceswap"]
    consent_row = record_consent(state.store, consent, recorded_by=actor, source_sha256=source.sha256)
    audit_row = open_audit(
        state.store,
        actor=actor,
        mode="live",
        consent_id=consent_row.id,
        source_asset_id=source.asset_id,
        source_sha256=source.sha256,
        target_sha256="",
        outcome="running",
    )
    try:
        source_bgr = load_bgr(source.read(), "source")
        session = await run_in_threadpool(
            LiveSession,
            studio.model_settings,
            source_bgr,
            make_options(req.target_face, req.many_faces, None, enhance=req.enhance,
                         occlusion_mask=req.occlusion_mask, region_mask=req.region_mask,
                         hand_mask=req.hand_mask, glasses=req.glasses, blend=req.blend,
                         follow_gaze=req.follow_gaze),
            req.label_corner,
        )
    except (NoFaceError, LimitError) as exc:
        message = no_face_message(exc, "source")
        update_audit(state.store, audit_row.id, outcome="failed", error=message)
        await _live_error(ws, message)
        return
    await _run_live(ws, state, session, audit_row.id, consent_row.id)


# Live sessions running per server (keyed by its state object): each one holds an engine and a core.
_live_sessions: dict[int, int] = {}


async def _run_live(ws: WebSocket, state: Any, session: LiveSession, audit_id: str, consent_id: str) -> None:
    await ws.send_json({"type": "ready", "consent_id": consent_id, "audit_id": audit_id})
    frames, faces, started = 0, 0, time.monotonic()
    recent: list[float] = []
    outcome, error, stopping = "succeeded", None, False
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            data = message.get("bytes")
            if data is None:
                if '"stop"' in (message.get("text") or ""):
                    stopping = True  # {"type": "stop"}: end cleanly, answer "ended" once the log is written
                    break
                continue  # other text after the first message is ignored (a client may send pings)
            if len(data) > state.settings.max_upload_bytes:
                await _live_error(ws, "frame: larger than the upload limit (GENSTUDIO_MAX_UPLOAD_BYTES)", 4413)
                break
            try:
                jpeg, n = await run_in_threadpool(session.process, data)
            except ValueError as exc:
                await ws.send_json({"type": "error", "detail": str(exc)})
                continue
            now = time.monotonic()
            recent = [t for t in recent if now - t < 2.0] + [now]
            frames += 1
            faces += n
            fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
            await ws.send_bytes(jpeg)
            await ws.send_json({"type": "stats", "fps": round(fps, 2), "faces": n, "frames": frames,
                                "no_face": n == 0})
    except WebSocketDisconnect:
        pass
    except Exception as exc:  # noqa: BLE001 - recorded in the audit log, then the socket closes
        outcome, error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        elapsed = time.monotonic() - started
        update_audit(
            state.store,
            audit_id,
            outcome=outcome,
            error=error,
            stats={
                "frames": frames,
                "faces_swapped": faces,
                "seconds": round(elapsed, 2),
                "fps": round(frames / elapsed, 2) if elapsed > 0 else 0.0,
            },
        )
    if stopping:
        await ws.send_json({"type": "ended", "frames": frames})
        await ws.close(1000)
