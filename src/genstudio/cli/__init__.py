"""The `genstudio` command: serve, image, faceswap, verify, models. Errors are one line on stderr, exit 1."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from genstudio import __version__
from genstudio.cli.common import settings_from as _settings
from genstudio.storage.files import user_file_mode  # noqa: F401 - kept for callers of genstudio.cli


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line on stderr and exit 1, like every other error of the command."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"genstudio: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(1)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from genstudio.api.app import create_app

    settings = _settings(args)
    settings = settings.model_copy(update={"host": args.host, "port": args.port})
    settings.check_bind(args.host)
    _check_device(settings)
    app = create_app(settings)
    print(f"genstudio {__version__} on http://{args.host}:{args.port}  (data: {settings.data_dir})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _check_device(settings: object) -> None:
    """A device that is not there stops `serve` and `worker` at start (DeviceError: one line naming
    GENSTUDIO_DEVICE / _DTYPE / _MEMORY, exit 1), not at the first job."""
    from genstudio.image.device import check_settings

    check_settings(settings)


def cmd_verify(args: argparse.Namespace) -> int:
    from genstudio import runtime

    path = Path(args.file)
    studios = runtime.Studios(runtime.context(_settings(args), channel="cli"))
    report = studios.verify(path.read_bytes(), filename=path.name)
    print(json.dumps(report, indent=2, default=str))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from genstudio.faceswap.zoo import ID_PREFIX, FaceModelZoo
    from genstudio.image.models import ModelRegistry, family_of, size_of

    settings = _settings(args)
    registry, zoo = ModelRegistry(settings), FaceModelZoo(settings)
    face_model = bool(args.target) and args.target.startswith(ID_PREFIX) and zoo.has(args.target)
    if args.style and not (args.action in ("add", "pull") and args.kind == "faceswap"):
        raise ValueError("--style is for `models add|pull ... --kind faceswap` (a swap model's family)")
    if args.file and not (args.action == "pull" and args.kind == "faceswap"):
        raise ValueError("--file is for `models pull REPO --kind faceswap --file NAME.onnx`")
    if args.action == "list":
        default = registry.default_id()
        for e in registry.list(None):
            size = size_of(e)
            print(f"{'*' if e.id == default else ' '} {e.id:32} {e.kind:10} {family_of(e):12} {e.format:12} "
                  f"{f'{size / 2**30:.2f} GB' if size else '':>9}  {e.name}")
        for m in zoo.public():
            print(f"{'*' if m['default'] else ' '} {m['id']:32} {'faceswap':10} {m['family']:12} {'onnx':12} "
                  f"{m['size_bytes'] / 2**20:6.1f} MB  {m['name']}")
    elif args.action == "add" and args.kind == "faceswap":
        fm = zoo.add(args.target, name=args.name, style=args.style)
        active = zoo.active().get(fm.role)
        state = "active" if active and active.id == fm.id else f"not active: `genstudio models default {fm.id}`"
        print(f"added {fm.id} (faceswap {fm.role}{f', {fm.style} style' if fm.style else ''}, "
              f"{fm.input_size} px input; {state})")
    elif args.action == "add":
        e = registry.add(args.target, name=args.name, config=args.config, kind=args.kind)
        print(f"added {e.id} ({e.kind}, {e.format}, {family_of(e)})")
    elif args.action == "pull" and args.kind == "faceswap":
        if not args.file:
            raise ValueError("models pull REPO --kind faceswap needs --file NAME.onnx (the file in the repo)")
        fm = zoo.pull(args.target, args.file, revision=args.revision, name=args.name, style=args.style,
                      progress=_bytes_line())
        print(f"\npulled {args.target}:{args.file} as {fm.id} (faceswap {fm.role}, {fm.size_bytes / 2**20:.1f} MB)")
    elif args.action == "pull":
        e = registry.pull(args.target, revision=args.revision, name=args.name, progress=_bytes_line())
        print(f"\npulled {args.target} as {e.id} ({family_of(e)}, {size_of(e) / 2**30:.2f} GB)")
    elif args.action == "remove":
        zoo.remove(args.target) if face_model else registry.remove(args.target)
        print(f"removed {args.target}" + (" (your file is kept)" if face_model else ""))
    elif args.action == "default" and face_model:
        fm = zoo.set_active(args.target)
        print(f"face-swap {fm.role}: {fm.id}")
    elif args.action == "default":
        e = registry.set_default(args.target)
        print(f"default image model: {e.id}")
    return 0


def _bytes_line() -> Any:
    """A progress line for downloads: bytes, percent, rate and ETA, rewritten in place."""
    import time

    start = time.monotonic()
    last = [0.0]

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < 0.2 and done < total:
            return
        last[0] = now
        rate = done / max(now - start, 1e-6)
        eta = (total - done) / rate if rate > 0 else 0
        print(f"\r{done / 2**20:8.1f} / {total / 2**20:.1f} MB  {100 * done / max(total, 1):5.1f}%  "
              f"{rate / 2**20:6.1f} MB/s  ETA {eta:5.0f} s", end="", file=sys.stderr, flush=True)

    return show


def cmd_worker(args: argparse.Namespace) -> int:
    from genstudio.jobs.distributed import run_worker
    from genstudio.runtime import make_handlers
    from genstudio.storage.db import Store, make_engine
    from genstudio.storage.files import FileStore

    settings = _settings(args)
    if not settings.broker_url:
        raise ValueError("GENSTUDIO_BROKER_URL is not set: a worker needs the broker (redis://...)")
    _check_device(settings)
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

    from genstudio import runtime

    for name in runtime.studio_names():  # each studio adds its own subcommands
        runtime.load(runtime.studio_class(name).cli)(sub)

    v = sub.add_parser("verify", help="check a file's watermark, label and provenance manifest")
    v.add_argument("file")
    v.set_defaults(func=cmd_verify)

    m = sub.add_parser("models", help="list, add, pull, remove models (image, add-ons, face swap) or set the default")
    m.add_argument("action", choices=["list", "add", "pull", "remove", "default"])
    m.add_argument("target", nargs="?", help="add: a folder or .safetensors file; pull: a hub id; else a model id")
    m.add_argument("--name")
    m.add_argument("--kind", choices=["image", "lora", "embedding", "controlnet", "upscaler", "faceswap"],
                   default="image", help="add: what the file is, an image model (default), an add-on used with "
                   "one, or a face-swap ONNX model (swapper, recognition, enhancer, occluder or parser: read from "
                   "the model)")
    m.add_argument("--file", help="pull --kind faceswap: the .onnx file to fetch from the repo")
    m.add_argument("--style", choices=["inswapper", "hyperswap", "simswap"],
                   help="add --kind faceswap: a swap model's family when its name and shape do not say")
    m.add_argument("--revision", help="pull: a branch, tag or commit")
    m.add_argument("--config", help="for a single .safetensors file: a local diffusers folder with its configs")
    m.add_argument("--data-dir")
    m.set_defaults(func=cmd_models)
    w = sub.add_parser("worker", help="run jobs from the distributed queue (needs GENSTUDIO_BROKER_URL)")
    w.add_argument(
        "--queues", default=",".join(runtime.studio_names()), help="comma-separated studios to serve (default: all)"
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


