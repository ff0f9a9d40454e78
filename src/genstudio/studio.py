"""The one shape every studio has: a request becomes params in `resolve`, params become outputs in `run`.

A studio is a package with a class that satisfies `Studio`; `genstudio.runtime` lists them (one line
each) and builds from them the job handlers (server, job process, worker), `/api/models`, the gallery's
studio filter and the worker's default queues. The API router and the CLI commands are thin adapters
named here by dotted path, so this layer never imports the web or the command line.

Inputs (face photos, targets, source melodies) are named by reference: an asset id through the API,
a file path on the command line. `Inputs` turns a reference into bytes and facts for both, so that
`resolve` and `run` are the same code whichever adapter called them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

from genstudio.config import Settings
from genstudio.errors import GoneError, LimitError, NotFoundError
from genstudio.jobs.base import JobContext, OutputFile
from genstudio.provenance.stage import ProvenanceStage
from genstudio.storage.files import FileStore, sha256_file
from genstudio.storage.sniff import sniff


@dataclass(frozen=True)
class InputFile:
    """A file a request refers to: an uploaded or generated asset, or (CLI) a file on disk."""

    ref: str  # what params store: an asset id, or "file:" + an absolute path for the CLI
    path: Path
    mime: str
    kind: str  # image | video | midi | music (a media kind, from the content)
    sha256: str
    asset_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)  # a generated asset's own params

    def read(self) -> bytes:
        return self.path.read_bytes()


class Inputs(Protocol):
    def get(self, ref: str, field: str) -> InputFile:
        """The file behind `ref`; LimitError (404/422/410 flavours) naming `field` when there is none."""
        ...


class AssetInputs:
    """References are asset ids (the API, the job process, workers): never a path a user chose."""

    def __init__(self, store: Any, files: FileStore) -> None:
        self.store = store
        self.files = files

    def get(self, ref: str, field: str) -> InputFile:
        asset = self.store.get_asset(ref) if ref.isalnum() else None
        if asset is None:
            raise NotFoundError(field, f"no asset {ref!r}")
        path = self.files.abspath(asset.path)
        if not path.is_file():
            raise GoneError(field, f"the file of {ref} is gone (deleted, or removed by the retention period)")
        kind = asset.params.get("upload_kind") or asset.kind if asset.kind == "upload" else asset.kind
        return InputFile(ref=asset.id, path=path, mime=asset.mime, kind=str(kind), sha256=asset.sha256,
                         asset_id=asset.id, params=dict(asset.params or {}))


class FileInputs:
    """References are file paths (the command line, in the user's own process)."""

    def get(self, ref: str, field: str) -> InputFile:
        path = Path(ref.removeprefix("file:")).expanduser()
        if not path.is_file():
            raise NotFoundError(field, f"no such file {path}")
        with open(path, "rb") as f:
            head = f.read(64)
        found = sniff(head)
        if found is None:
            raise LimitError(field, f"{path.name}: not a PNG, JPEG or WebP image, a MIDI file or a video")
        kind, mime = found
        return InputFile(ref=f"file:{path.resolve()}", path=path.resolve(), mime=mime, kind=kind,
                         sha256=sha256_file(path))


@dataclass
class StudioContext:
    """What a studio is given: settings, storage, where inputs come from, who acts, the provenance stage."""

    settings: Settings
    inputs: Inputs
    stage: ProvenanceStage
    actor: str = "local"  # the API token's fingerprint, or "local" (CLI, loopback without a token)
    channel: str = "api"  # who is asking: api | cli | live (face swap records it in its audit log)
    store_factory: Callable[[], Any] | None = None

    @cached_property
    def store(self) -> Any:
        if self.store_factory is not None:
            return self.store_factory()
        from genstudio.storage.db import Store, make_engine

        return Store(make_engine(self.settings.db_url))


def actor_for(token: str | None) -> str:
    """Who recorded a consent or ran a job: the API token's fingerprint (never the token), or "local"."""
    if not token:
        return "local"
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:12]


@runtime_checkable
class Studio(Protocol):
    """A studio: one package, one class. See the module docstring."""

    name: ClassVar[str]  # the job kind, the queue name and `Asset.studio`
    media_kinds: ClassVar[tuple[str, ...]]  # the asset kinds its outputs have (image, music, video)
    requests: ClassVar[dict[str, type[BaseModel]]]  # operation -> request model
    router: ClassVar[str]  # "module:attribute" of its FastAPI router (the web adapter)
    cli: ClassVar[str]  # "module:function" that adds its subcommands to the `genstudio` parser

    def __init__(self, ctx: StudioContext) -> None: ...

    def resolve(self, request: BaseModel, op: str | None = None) -> BaseModel:
        """The one place a request becomes exact job params: limits checked, seeds and defaults fixed,
        inputs looked up (and for face swap: consent recorded, the attempt audited)."""
        ...

    def params(self, raw: dict[str, Any]) -> BaseModel:
        """A job row's params back as the typed params model."""
        ...

    def run(self, params: BaseModel, job: JobContext) -> list[OutputFile]:
        """Params to output files, each with a `seal` for the provenance stage."""
        ...

    def models(self) -> list[dict[str, Any]]:
        """The models it offers, as GET /api/models lists them."""
        ...

    # Optional: `inspect(data, fmt, mime) -> dict | None`, the studio's own sections of a verify report.
