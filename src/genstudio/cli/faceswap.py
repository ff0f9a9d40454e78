"""`genstudio faceswap`: the face-swap studio's road (consent, audit, swap, label, watermark, signature)
on local files, in this process."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from genstudio.cli.common import progress_bar, settings_from, studio_context

FLAGS = {"consent.subject": "subject", "consent.statement": "consent", "consent": "consent"}


def _amount(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _request(args: argparse.Namespace, subject: str, **paths: str | None) -> Any:
    """The FaceSwapRequest of a command line: validated with placeholder ids (the API's are asset ids), then
    the file paths put in."""
    from genstudio.faceswap.safeguards import ConsentIn
    from genstudio.faceswap.studio import FaceSwapRequest

    consent = ConsentIn(statement=args.consent, subject=subject) if args.consent is not None else None
    req = FaceSwapRequest(source="cli", target="cli", consent=consent, target_face=args.target_face,
                          many_faces=args.many_faces, label_corner=args.label_corner, enhance=args.enhance,
                          occlusion_mask=args.occlusion_mask, region_mask=args.region_mask,
                          hand_mask=args.hand_mask, glasses=args.glasses, blend=args.blend,
                          follow_gaze=args.follow_gaze)
    return req.model_copy(update=paths)


def _flag_error(exc: Any) -> ValueError:
    """A studio's LimitError as the command line's "--flag: message"."""
    flag = FLAGS.get(exc.field, exc.field)
    message = exc.message
    if exc.field == "consent":
        message = "a consent statement is required for every face swap"
    return ValueError(f"--{flag.replace('_', '-')}: {message}")


def cmd_faceswap(args: argparse.Namespace) -> int:
    from genstudio.errors import LimitError
    from genstudio.faceswap.studio import FaceSwapStudio
    from genstudio.storage.files import atomic_write
    from genstudio.storage.sniff import sniff

    settings = settings_from(args)
    settings.ensure_dirs()
    subject = args.subject
    if not subject:
        # The contract's command names no subject; the record then says so, and who ran the command.
        subject = f"not named (consent recorded from the CLI by OS user {getpass.getuser()})"
        print("genstudio: warning: --subject not given: the consent record does not name the person", file=sys.stderr)
    out = Path(args.output)
    target = Path(args.target)
    if target.is_file():
        with open(target, "rb") as f:
            found = sniff(f.read(64))
        kind = found[0] if found else None
        if kind not in ("image", "video"):
            raise ValueError("--target: not a PNG, JPEG or WebP image or an MP4 video")
        want = {".mp4"} if kind == "video" else {".png", ".jpg", ".jpeg"}
        if out.suffix.lower() not in want:
            raise ValueError(f"-o: the output for this target must end in {' or '.join(sorted(want))}")
    req = _request(args, subject, source=args.source, target=args.target, reference=args.reference)
    studio = FaceSwapStudio(studio_context(settings))
    try:
        params = studio.resolve(req)
    except LimitError as exc:
        raise _flag_error(exc) from exc
    if params.target_kind == "image":
        jpeg = out.suffix.lower() in (".jpg", ".jpeg")
        params = params.model_copy(update={"target_mime": "image/jpeg" if jpeg else "image/png"})
    with progress_bar(args, "faceswap") as job:
        (output,) = studio.run(params, job)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, output.data, mode="user")
    import hashlib

    print(json.dumps({"file": str(out), "sha256": hashlib.sha256(output.data).hexdigest(),
                      "consent_id": params.consent_id, "audit_id": params.audit_id,
                      "stats": output.params.get("stats", {})}, indent=2, default=str))
    return 0


def cmd_faceswap_live(args: argparse.Namespace) -> int:
    from genstudio.errors import LimitError
    from genstudio.faceswap.live_camera import VirtualCameraUnavailable, run_camera
    from genstudio.faceswap.studio import FaceSwapStudio

    settings = settings_from(args)
    settings.ensure_dirs()
    req = _request(args, args.subject or "", source=args.source)
    studio = FaceSwapStudio(studio_context(settings))
    try:
        stats = run_camera(studio, req, camera=args.camera, virtual=not args.no_virtual_camera,
                           max_frames=args.frames, fps=args.fps)
    except LimitError as exc:
        raise _flag_error(exc) from exc
    except VirtualCameraUnavailable as exc:
        raise ValueError(str(exc)) from exc
    print(json.dumps({"frames": stats.frames, "frames_with_faces": stats.frames_with_faces,
                      "fps": round(stats.fps, 2), "camera": stats.camera,
                      "virtual_camera": stats.virtual_camera}, indent=2))
    return 0


def _swap_flags(p: Any) -> None:
    """The face choice, the label corner and the face models: the same on `faceswap` and `faceswap-live`."""
    choice = p.add_mutually_exclusive_group()
    choice.add_argument("--target-face", type=int, help="replace only face N (0 = the left-most)")
    choice.add_argument("--many-faces", action="store_true", help="replace every face")
    p.add_argument("--label-corner", default="bottom-right",
                   choices=["top-left", "top-right", "bottom-left", "bottom-right"])
    p.add_argument("--enhance", type=_amount, default=0.0, metavar="AMOUNT",
                   help="blend the face enhancer's result by AMOUNT (0-1; needs GENSTUDIO_FACESWAP_ENHANCER_MODEL)")
    p.add_argument("--occlusion-mask", action="store_true",
                   help="keep hands and objects in front of the face (needs GENSTUDIO_FACESWAP_OCCLUDER_MODEL)")
    p.add_argument("--hand-mask", action="store_true",
                   help="keep the target's hands where they cover the face (built in, no model to set)")
    p.add_argument("--glasses", choices=["source", "target", "none"], default="source",
                   help="whose glasses the result shows: the source photo's (default), the target's (kept on top; "
                        "the source's taken out) or none (the source's taken out)")
    p.add_argument("--follow-gaze", action="store_true",
                   help="put the source's irises where the target's are: the result looks where the target looks")
    p.add_argument("--blend", choices=["feather", "multiband"], default="feather",
                   help="the seam: the mask's feathered edge (default) or a multi-band (Laplacian pyramid) blend")
    p.add_argument("--region-mask", action="store_true",
                   help="swap only skin, brows, eyes, nose and lips; keep hair and glasses "
                        "(needs GENSTUDIO_FACESWAP_PARSER_MODEL)")


def register(sub: Any) -> None:
    f = sub.add_parser("faceswap", help="put the face from a photo onto the person in a video or image")
    f.add_argument("--source", required=True, help="the face photo (PNG, JPEG or WebP)")
    f.add_argument("--target", required=True, help="the MP4 video or image to change")
    f.add_argument("--consent", help="the consent statement of the person whose face is used (required)")
    f.add_argument("--subject", help="who consented: the person whose face is used (recorded with the consent)")
    _swap_flags(f)
    f.add_argument("--reference", help="replace the face most like this photo")
    f.add_argument("-o", "--output", required=True, help="OUT.mp4 for a video, OUT.png or OUT.jpg for an image")
    f.add_argument("--data-dir", help="where consent and audit records and the signing keys live")
    f.add_argument("-q", "--quiet", action="store_true")
    f.set_defaults(func=cmd_faceswap)

    v = sub.add_parser("faceswap-live", help="swap faces on this computer's camera live, out to a virtual camera")
    v.add_argument("--source", required=True, help="the face photo (PNG, JPEG or WebP)")
    v.add_argument("--consent", help="the consent statement of the person whose face is used (required)")
    v.add_argument("--subject", help="who consented: the person whose face is used (required)")
    _swap_flags(v)
    v.add_argument("--camera", type=int, default=0, help="the camera to read (OpenCV index; default 0)")
    v.add_argument("--fps", type=float, default=30.0, help="frame rate of the virtual camera")
    v.add_argument("--frames", type=int, help="stop after this many frames (default: until Ctrl-C)")
    v.add_argument("--no-virtual-camera", action="store_true",
                   help="swap without sending the frames anywhere (a dry run: audit and speed only)")
    v.add_argument("--data-dir", help="where consent and audit records and the signing keys live")
    v.set_defaults(func=cmd_faceswap_live)
