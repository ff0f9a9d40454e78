"""The studio registry and the job handlers built from it, for the server, the job process and workers.

Adding a studio is one package and one line in `STUDIOS`. Nothing here imports the web layer: the
job-runner child process and `genstudio worker` import this module, not FastAPI."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

from genstudio.config import Settings
from genstudio.jobs.base import Handler, JobContext, OutputFile
from genstudio.provenance.stage import ProvenanceStage
from genstudio.storage.files import FileStore
from genstudio.studio import AssetInputs, Inputs, Studio, StudioContext

# name -> "module:Class". The order is the order of the pages, the CLI and GET /api/models.
STUDIOS: dict[str, str] = {
    "image": "genstudio.image.studio:ImageStudio",
    "music": "genstudio.music.studio:MusicStudio",
    "faceswap": "genstudio.faceswap.studio:FaceSwapStudio",
}


def load(path: str) -> Any:
    """The object a "module:attribute" path names."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def studio_class(name: str) -> type[Studio]:
    return load(STUDIOS[name])


def studio_names() -> list[str]:
    return list(STUDIOS)


def make_stage(settings: Settings) -> ProvenanceStage:
    """The one signing identity of this data dir, loaded on first use."""
    from genstudio.provenance.identity import ensure_identity
    from genstudio.provenance.store import ManifestStore

    return ProvenanceStage(lambda: ensure_identity(settings.keys_dir), ManifestStore(settings.manifests_dir))


class Studios:
    """Every registered studio, built once on first use with one shared context."""

    def __init__(self, ctx: StudioContext) -> None:
        self.ctx = ctx
        self._built: dict[str, Studio] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Studio:
        with self._lock:
            if name not in self._built:
                self._built[name] = studio_class(name)(self.ctx)
            return self._built[name]

    def names(self) -> list[str]:
        return studio_names()

    def handlers(self) -> dict[str, Handler]:
        return {name: self.handler(name) for name in self.names()}

    def handler(self, name: str) -> Handler:
        """The job handler of one studio: typed params, run, then the provenance stage."""

        def handle(job: JobContext) -> list[OutputFile]:
            studio = self[name]
            outputs = studio.run(studio.params(dict(job.job.params)), job)
            return self.ctx.stage(outputs)

        return handle

    def verify(self, data: bytes, *, filename: str | None = None, mime: str | None = None) -> dict[str, Any]:
        """The provenance report of any file, with every studio's own checks (`inspect`, where it has one)."""
        from genstudio.provenance.store import ManifestStore
        from genstudio.provenance.verify import verify_bytes

        inspectors = [self[name].inspect for name in self.names() if hasattr(self[name], "inspect")]
        return verify_bytes(data, filename=filename, mime=mime, inspectors=inspectors,
                            manifests=ManifestStore(self.ctx.settings.manifests_dir))

    def models(self, studio: str | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for name in self.names():
            if studio in (None, name):
                out += [{**m, "studio": name} for m in self[name].models()]
        return out


def context(
    settings: Settings,
    *,
    store: Any = None,
    files: FileStore | None = None,
    inputs: Inputs | None = None,
    actor: str = "local",
    channel: str = "api",
    stage: ProvenanceStage | None = None,
) -> StudioContext:
    """A studio context over this data dir: inputs are asset ids unless told otherwise (the CLI)."""
    files = files or FileStore(settings.assets_dir, settings.data_dir / "tmp")
    store_factory: Callable[[], Any] | None = (lambda: store) if store is not None else None
    ctx = StudioContext(settings=settings, inputs=inputs or AssetInputs(None, files),
                        stage=stage or make_stage(settings), actor=actor, channel=channel,
                        store_factory=store_factory)
    if isinstance(ctx.inputs, AssetInputs) and ctx.inputs.store is None:
        ctx.inputs.store = _LazyStore(ctx)
    return ctx


class _LazyStore:
    """The context's store, opened when an input is first looked up (the job process opens none before)."""

    def __init__(self, ctx: StudioContext) -> None:
        self._ctx = ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx.store, name)


def make_handlers(settings: Settings) -> dict[str, Handler]:
    """Job kind -> handler: what the job-runner process and `genstudio worker` run."""
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    return Studios(context(settings)).handlers()
