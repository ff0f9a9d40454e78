"""The server: REST API, Server-Sent Events and the web UI, with the embedded job queue."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from genstudio import __version__, runtime
from genstudio.api import errors
from genstudio.api.deps import AppState
from genstudio.api.routes import assets, jobs, models, music_onnx, system, uploads, verify
from genstudio.api.security import BodySizeLimit, TokenAuth
from genstudio.config import Settings, get_settings
from genstudio.jobs.local import LocalQueue
from genstudio.jobs.process import ProcessRunner
from genstudio.storage.db import Store, make_engine
from genstudio.storage.files import FileStore
from genstudio.studio import actor_for

STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"
# The page loads nothing from elsewhere and runs no inline script; say so to the browser. 'wasm-unsafe-eval'
# lets it compile WebAssembly (onnxruntime-web, for on-device melodies) without allowing eval of strings.
# Media from blob: URLs: with an API token, <audio> cannot send the header, so the page plays a fetched blob.
CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' blob:; "
    "media-src 'self' blob:; connect-src 'self'; worker-src 'self'; manifest-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
log = logging.getLogger(__name__)


def build_state(settings: Settings) -> AppState:
    settings.ensure_dirs()
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    store = Store(make_engine(settings.db_url))
    files = FileStore(settings.assets_dir, settings.data_dir / "tmp")
    queue: Any
    if settings.broker_url:
        from genstudio.jobs.distributed import DistributedQueue

        queue = DistributedQueue(settings, store, files)
    else:
        runner_factory = None
        if settings.executor == "process":
            runner_factory = partial(ProcessRunner, "genstudio.runtime:make_handlers", settings)
        queue = LocalQueue(
            store, files, max_jobs=settings.max_queued_jobs, workers=settings.workers, runner_factory=runner_factory
        )
        queue.min_free_bytes = int(settings.min_free_disk_mb * 1024 * 1024)
    ctx = runtime.context(settings, store=store, files=files, actor=actor_for(settings.api_token))
    studios = runtime.Studios(ctx)
    for kind, handler in studios.handlers().items():
        queue.register(kind, handler)
    return AppState(settings=settings, store=store, files=files, queue=queue, studios=studios)


async def _retention_loop(state: AppState) -> None:
    """Delete face-swap inputs past GENSTUDIO_FACESWAP_RETENTION_HOURS: once on start, then periodically."""
    from genstudio.faceswap.safeguards import sweep_retention

    while True:
        try:
            removed = await asyncio.to_thread(
                sweep_retention, state.store, state.files, state.settings.faceswap_retention_hours
            )
            if removed:
                log.info("retention: deleted %d face-swap upload(s)", len(removed))
        except Exception:  # noqa: BLE001 - a failed sweep is retried at the next interval
            log.exception("face-swap retention sweep failed")
        await asyncio.sleep(state.settings.faceswap_sweep_interval_s)


def create_app(settings: Settings | None = None, *, start_workers: bool = True) -> FastAPI:
    settings = settings or get_settings()
    state = build_state(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Scratch files a crash left (video parts, probes, renders): with the embedded queue nothing is in
        # flight yet; with outside workers sharing the data dir, only old ones go.
        removed = await asyncio.to_thread(
            state.files.sweep_tmp, older_than_s=3600.0 if state.settings.broker_url else 0.0
        )
        if removed:
            log.info("removed %d leftover scratch file(s)", len(removed))
        if start_workers:
            state.queue.start()
        state.pool.warm()
        # Everything loaded so far (torch, diffusers, the routes) lives as long as the server: moved out of
        # the collector's sight, so that a full collection under load is short (a status poll's tail).
        gc.collect()
        gc.freeze()
        sweeper = asyncio.create_task(_retention_loop(state))
        try:
            yield
        finally:
            sweeper.cancel()
            state.queue.stop()
            state.pool.stop()
            gc.unfreeze()  # an app made and stopped in a longer-lived process (tests) leaves nothing pinned

    # The interactive docs are served below from vendored files: FastAPI's default page loads them from a CDN.
    app = FastAPI(title="genstudio", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.genstudio = state
    errors.install(app)
    for module in (jobs, assets, uploads, models, music_onnx, verify, system):
        app.include_router(module.router)
    for name in runtime.studio_names():  # each studio's own router, named in its Studio class
        app.include_router(runtime.load(runtime.studio_class(name).router))

    if (STATIC_DIR / "index.html").is_file():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

        @app.get("/docs", include_in_schema=False)
        def api_docs() -> HTMLResponse:
            vendor = "/static/vendor/swagger-ui"
            return get_swagger_ui_html(
                openapi_url=app.openapi_url or "/openapi.json",
                title="genstudio API",
                swagger_js_url=f"{vendor}/swagger-ui-bundle.js",
                swagger_css_url=f"{vendor}/swagger-ui.css",
                swagger_favicon_url=f"{vendor}/favicon-32x32.png",
            )

        page_headers = {
            "Cache-Control": "no-cache",
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
        }

        @app.get("/", include_in_schema=False)
        def index() -> FileResponse:
            return FileResponse(STATIC_DIR / "index.html", headers=page_headers)

        @app.get("/music", include_in_schema=False)
        def music_page() -> FileResponse:
            return FileResponse(STATIC_DIR / "music.html", headers=page_headers)

        @app.get("/models", include_in_schema=False)
        def models_page() -> FileResponse:
            return FileResponse(STATIC_DIR / "models.html", headers=page_headers)

        @app.get("/faceswap", include_in_schema=False)
        def faceswap_page() -> FileResponse:
            return FileResponse(
                STATIC_DIR / "faceswap.html",
                headers={
                    "Cache-Control": "no-cache",
                    "Content-Security-Policy": CSP,
                    "X-Content-Type-Options": "nosniff",
                },
            )

        @app.get("/manifest.webmanifest", include_in_schema=False)
        def manifest() -> FileResponse:
            return FileResponse(STATIC_DIR / "manifest.webmanifest", media_type="application/manifest+json")

        @app.get("/sw.js", include_in_schema=False)
        def service_worker() -> FileResponse:
            return FileResponse(
                STATIC_DIR / "sw.js", media_type="text/javascript", headers={"Cache-Control": "no-cache"}
            )
    else:

        @app.get("/", include_in_schema=False)
        def index_docs() -> RedirectResponse:
            return RedirectResponse("/openapi.json")

    # Added innermost first: headers on every answer, then the Host/Origin guard, the size cap (before
    # anything reads the body), auth, and only then a route.
    from genstudio.api.security import BrowserGuard, SecurityHeaders

    app.add_middleware(TokenAuth, token=settings.api_token)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes + 64 * 1024)
    app.add_middleware(BrowserGuard, settings=settings)
    app.add_middleware(SecurityHeaders, csp=CSP)
    return app
