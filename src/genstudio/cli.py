"""The `genstudio` command: serve, image, faceswap, verify, models. Errors are one line on stderr, exit 1."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from genstudio import __version__


def user_file_mode(path: str | Path) -> None:
    """Files written into a user's folder get the mode a plain `open` would give (0666 minus the umask),
    not mkstemp's 0600."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line on stderr and exit 1, like every other error of the command."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"genstudio: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(1)


def _settings(args: argparse.Namespace) -> Any:
    from genstudio.config import Settings

    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    return Settings(**overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from genstudio.api.app import create_app

    settings = _settings(args)
    settings = settings.model_copy(update={"host": args.host, "port": args.port})
    settings.check_bind(args.host)
    app = create_app(settings)
    print(f"genstudio {__version__} on http://{args.host}:{args.port}  (data: {settings.data_dir})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def cmd_image(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from genstudio.image.models import ModelRegistry
    from genstudio.image.params import ImageRequest
    from genstudio.image.service import ImageStudio, resolve, write_png_output

    settings = _settings(args)
    settings.ensure_dirs()
    registry = ModelRegistry(settings)
    model = args.model
    if model and (Path(model).exists()):
        model = registry.add(model).id
    req = ImageRequest(
        prompt=args.prompt,
        negative_prompt=args.negative_prompt or "",
        style=args.style,
        model=model,
        seed=args.seed,
        steps=args.steps,
        guidance=args.guidance,
        width=args.width,
        height=args.height,
        batch=args.batch,
        sampler=args.sampler,
        tile=args.tile,
    )
    params = resolve(req, registry, settings)
    studio = ImageStudio(settings, registry)
    out = Path(args.output)
    if out.suffix.lower() != ".png":
        raise ValueError("-o: the output must be a .png file")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tqdm(total=100, unit="%", disable=args.quiet or not sys.stderr.isatty(), desc="image") as bar:

        def progress(fraction: float) -> None:
            bar.update(round(fraction * 100) - bar.n)

        outputs = studio.run(params, on_progress=progress)
    paths = []
    for i, o in enumerate(outputs):
        dest = out if len(outputs) == 1 else out.with_name(f"{out.stem}-{i + 1}{out.suffix}")
        write_png_output(o, dest)
        paths.append(str(dest))
    print(json.dumps({"files": paths, "seed": params.seed, "params": params.model_dump()}, indent=2))
    return 0


def cmd_faceswap(args: argparse.Namespace) -> int:
    import hashlib
    import tempfile

    from tqdm import tqdm

    from genstudio.api.routes.uploads import sniff
    from genstudio.faceswap.safeguards import (
        ConsentIn,
        actor_for,
        check_consent,
        open_audit,
        record_consent,
        sha256_file,
        update_audit,
    )
    from genstudio.faceswap.studio import (
        FaceSwapStudio,
        check_choice,
        check_side,
        load_bgr,
        make_options,
        probe_target,
        swap_to_bytes,
    )
    from genstudio.image.params import LimitError
    from genstudio.storage.db import Store, make_engine

    settings = _settings(args)
    if args.consent is None:
        raise ValueError("--consent: a consent statement is required for every face swap")
    subject = args.subject
    if not subject:
        # The contract's command names no subject; the record then says so, and who ran the command.
        import getpass

        subject = f"not named (consent recorded from the CLI by OS user {getpass.getuser()})"
        print("genstudio: warning: --subject not given: the consent record does not name the person", file=sys.stderr)
    try:
        consent = check_consent(ConsentIn(statement=args.consent, subject=subject), settings)
        check_choice(args.target_face, args.many_faces, args.reference)
    except LimitError as exc:
        flag = {"consent.subject": "subject", "consent.statement": "consent"}.get(exc.field, exc.field)
        raise ValueError(f"--{flag.replace('_', '-')}: {exc.message}") from exc
    source, target = Path(args.source), Path(args.target)
    reference = Path(args.reference) if args.reference else None
    for flag, path in (("--source", source), ("--target", target), ("--reference", reference)):
        if path is not None and not path.is_file():
            raise ValueError(f"{flag}: no such file {path}")
    head = target.read_bytes()[:16]
    sniffed = sniff(head)
    if sniffed is None:
        raise ValueError("--target: not a PNG, JPEG or WebP image or an MP4 video")
    target_kind, target_mime = sniffed
    if target_kind not in ("image", "video"):
        raise ValueError("--target: not a PNG, JPEG or WebP image or an MP4 video")
    out = Path(args.output)
    want = {".mp4"} if target_kind == "video" else {".png", ".jpg", ".jpeg"}
    if out.suffix.lower() not in want:
        raise ValueError(f"-o: the output for this target must end in {' or '.join(sorted(want))}")
    try:
        source_bgr = load_bgr(source.read_bytes(), "source")
        reference_bgr = load_bgr(reference.read_bytes(), "reference") if reference else None
        if target_kind == "video":
            probe_target(target, settings, "target")
        else:
            target_bgr = load_bgr(target.read_bytes(), "target")
            check_side(target_bgr.shape[1], target_bgr.shape[0], settings, "target")
    except LimitError as exc:
        raise ValueError(f"--{exc.field}: {exc.message}") from exc
    if target_kind == "image":
        target_mime = "image/jpeg" if out.suffix.lower() in (".jpg", ".jpeg") else "image/png"

    settings.ensure_dirs()
    store = Store(make_engine(settings.db_url))
    source_sha, target_sha = sha256_file(source), sha256_file(target)
    reference_sha = sha256_file(reference) if reference else None
    actor = actor_for(None)
    consent_row = record_consent(store, consent, recorded_by=actor, source_sha256=source_sha)
    audit = open_audit(store, actor=actor, mode="cli", consent_id=consent_row.id, source_sha256=source_sha,
                       target_sha256=target_sha, reference_sha256=reference_sha, outcome="running")
    studio = FaceSwapStudio(settings, store=store)
    provenance = {
        "consent_id": consent_row.id,
        "audit_id": audit.id,
        "inputs": {"source_sha256": source_sha, "target_sha256": target_sha, "reference_sha256": reference_sha},
        "options": {"target_face": args.target_face, "many_faces": args.many_faces},
        "software": f"genstudio {__version__}",
    }
    try:
        with tqdm(total=100, unit="%", disable=args.quiet or not sys.stderr.isatty(), desc="faceswap") as bar:
            data, _mime, stats = swap_to_bytes(
                studio.swapper(),
                source_bgr=source_bgr,
                target_path=target,
                target_kind=target_kind,
                target_mime=target_mime,
                options=make_options(args.target_face, args.many_faces, reference_bgr),
                label_corner=args.label_corner,
                identity=studio.identity(),
                provenance=provenance,
                tmp_dir=settings.data_dir / "tmp",
                progress=lambda f: bar.update(round(f * 100) - bar.n),
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            user_file_mode(tmp)
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except BaseException as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if type(exc).__name__ == "NoFaceError" and not message.startswith(("source:", "target:")):
            message = message if "no face" in message else f"source: no face found in the source photo ({message})"
            if not message.startswith(("source:", "target:")):
                message = f"source: {message}"
        update_audit(store, audit.id, outcome="failed", error=message)
        if type(exc).__name__ == "NoFaceError":
            raise ValueError(message) from exc
        raise
    digest = hashlib.sha256(data).hexdigest()
    update_audit(store, audit.id, outcome="succeeded", output_sha256=digest,
                 stats={k: v for k, v in stats.items() if isinstance(v, int | float | str | bool)})
    print(json.dumps({"file": str(out), "sha256": digest, "consent_id": consent_row.id, "audit_id": audit.id,
                      "stats": stats}, indent=2, default=str))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from genstudio.provenance import verify_bytes

    path = Path(args.file)
    report = verify_bytes(path.read_bytes(), filename=path.name)
    print(json.dumps(report, indent=2, default=str))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from genstudio.image.models import ModelRegistry

    registry = ModelRegistry(_settings(args))
    if args.action == "list":
        for e in registry.list():
            print(f"{e.id:32} {e.format:12} {e.name}")
    elif args.action == "add":
        e = registry.add(args.target, name=args.name, config=args.config)
        print(f"added {e.id} ({e.format})")
    elif args.action == "pull":
        e = registry.pull(args.target)
        print(f"pulled {args.target} as {e.id}")
    elif args.action == "remove":
        registry.remove(args.target)
        print(f"removed {args.target}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from genstudio.api.app import make_handlers
    from genstudio.jobs.distributed import run_worker
    from genstudio.storage.db import Store, make_engine
    from genstudio.storage.files import FileStore

    settings = _settings(args)
    if not settings.broker_url:
        raise ValueError("GENSTUDIO_BROKER_URL is not set: a worker needs the broker (redis://...)")
    settings.ensure_dirs()
    handlers = make_handlers(settings)
    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    unknown = sorted(set(queues) - set(handlers))
    if unknown:
        raise ValueError(f"--queues: unknown {', '.join(unknown)}; known: {', '.join(sorted(handlers))}")
    store = Store(make_engine(settings.db_url))
    files = FileStore(settings.assets_dir, settings.data_dir / "tmp")
    run_worker(settings, queues, handlers, store, files, loglevel=args.log_level.upper())
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from genstudio.storage.db import make_engine
    from genstudio.storage.migrate import current, head

    settings = _settings(args)
    settings.ensure_dirs()
    engine = make_engine(settings.db_url)  # brings the schema to head
    print(
        json.dumps(
            {"database": engine.url.render_as_string(hide_password=True), "revision": current(engine), "head": head()}
        )
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from genstudio.music.onnx_export import main as export_main

    return export_main(args.rest)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="genstudio", description="Self-hosted generative studio.")
    p.add_argument("--version", action="version", version=f"genstudio {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="start the web studio and API")
    s.add_argument("--host", default=os.environ.get("GENSTUDIO_HOST", "127.0.0.1"))
    s.add_argument("--port", type=int, default=int(os.environ.get("GENSTUDIO_PORT", "8000")))
    s.add_argument("--data-dir")
    s.add_argument("--log-level", default="info")
    s.set_defaults(func=cmd_serve)

    i = sub.add_parser("image", help="text to image")
    i.add_argument("prompt")
    i.add_argument("--style")
    i.add_argument("--negative-prompt", default="")
    i.add_argument("--seed", type=int)
    i.add_argument("--steps", type=int)
    i.add_argument("--guidance", type=float)
    i.add_argument("--width", type=int)
    i.add_argument("--height", type=int)
    i.add_argument("--batch", type=int, default=1)
    i.add_argument("--sampler", choices=["ddim", "euler", "euler_a", "dpmpp_2m", "lcm"])
    i.add_argument("--tile", action="store_true")
    i.add_argument("--model", help="a model id (genstudio models list) or a local folder/.safetensors")
    i.add_argument("-o", "--output", required=True)
    i.add_argument("--data-dir")
    i.add_argument("-q", "--quiet", action="store_true")
    i.set_defaults(func=cmd_image)

    from genstudio.music.cli import add_music_parser

    add_music_parser(sub)

    f = sub.add_parser("faceswap", help="put the face from a photo onto the person in a video or image")
    f.add_argument("--source", required=True, help="the face photo (PNG, JPEG or WebP)")
    f.add_argument("--target", required=True, help="the MP4 video or image to change")
    f.add_argument("--consent", help="the consent statement of the person whose face is used (required)")
    f.add_argument("--subject", help="who consented: the person whose face is used (recorded with the consent)")
    choice = f.add_mutually_exclusive_group()
    choice.add_argument("--target-face", type=int, help="replace only face N (0 = the largest)")
    choice.add_argument("--many-faces", action="store_true", help="replace every face")
    f.add_argument("--reference", help="replace the face most like this photo")
    f.add_argument("--label-corner", default="bottom-right",
                   choices=["top-left", "top-right", "bottom-left", "bottom-right"])
    f.add_argument("-o", "--output", required=True, help="OUT.mp4 for a video, OUT.png or OUT.jpg for an image")
    f.add_argument("--data-dir", help="where consent and audit records and the signing keys live")
    f.add_argument("-q", "--quiet", action="store_true")
    f.set_defaults(func=cmd_faceswap)

    v = sub.add_parser("verify", help="check a file's watermark, label and provenance manifest")
    v.add_argument("file")
    v.set_defaults(func=cmd_verify)

    m = sub.add_parser("models", help="list, add, pull or remove image models")
    m.add_argument("action", choices=["list", "add", "pull", "remove"])
    m.add_argument("target", nargs="?")
    m.add_argument("--name")
    m.add_argument("--config", help="for a single .safetensors file: a local diffusers folder with its configs")
    m.add_argument("--data-dir")
    m.set_defaults(func=cmd_models)
    w = sub.add_parser("worker", help="run jobs from the distributed queue (needs GENSTUDIO_BROKER_URL)")
    w.add_argument(
        "--queues", default="image,music,faceswap", help="comma-separated studios to serve (default: all three)"
    )
    w.add_argument("--data-dir", help="the data dir shared with the server (assets, keys)")
    w.add_argument("--log-level", default="info")
    w.set_defaults(func=cmd_worker)

    e = sub.add_parser(
        "export", help="export the melody model as ONNX (encoder + single-graph sampler)", add_help=False
    )
    e.add_argument("format", choices=["onnx"])
    e.add_argument("rest", nargs=argparse.REMAINDER, help="[--model DIR] -o OUT_DIR (see: genstudio export onnx -h)")
    e.set_defaults(func=cmd_export)

    d = sub.add_parser("db", help="migrate the database schema to the latest revision (Alembic)")
    d.add_argument("action", choices=["upgrade"])
    d.add_argument("--data-dir")
    d.set_defaults(func=cmd_db)
    return p


def _quiet_libraries() -> None:
    """Library chatter (deprecation notices, 'install accelerate') is not the user's business on a terminal."""
    import warnings

    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def main(argv: list[str] | None = None) -> int:
    _quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "models" and args.action != "list" and not args.target:
        parser.error(f"models {args.action} needs a target")
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("genstudio: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's contract: one line, non-zero exit
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            err = exc.errors()[0]
            msg = f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}"
        else:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"genstudio: error: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
