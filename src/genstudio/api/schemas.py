"""Response models: what every route answers, so that the OpenAPI document describes the answers.

Open-ended parts (a studio's params, a verify report's sections) are typed as JSON objects; the
fixed parts are named fields."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    """An answer that may grow new keys without breaking clients."""

    model_config = ConfigDict(extra="allow")


class JobAccepted(_Open):
    """202: the job was queued; `params` are the exact values it will run with."""

    job_id: str
    params: dict[str, Any] = Field(default_factory=dict)


class FaceSwapAccepted(_Open):
    job_id: str
    consent_id: str
    audit_id: str


class JobOut(BaseModel):
    id: str
    kind: str = Field(description="the studio that runs it")
    status: str = Field(description="queued | running | succeeded | failed | cancelled")
    progress: float
    error: str | None
    params: dict[str, Any]
    assets: list[str]
    attempts: int
    worker: str | None
    created_at: str
    finished_at: str | None


class AssetMeta(BaseModel):
    id: str
    kind: str = Field(description="the media: image | music | video | upload")
    studio: str | None = Field(description="the studio that made it; null for an upload")
    mime: str
    size: int
    sha256: str
    job_id: str | None
    seed: int | None
    params: dict[str, Any]
    created_at: str
    url: str


class GalleryPage(BaseModel):
    items: list[AssetMeta]
    next: str | None = Field(description="pass as `before` for the next page; null on the last page")


class Deleted(BaseModel):
    deleted: str


class UploadOut(_Open):
    asset_id: str
    kind: str
    mime: str
    size: int
    sha256: str
    melody: dict[str, Any] | None = None


class UploadItem(BaseModel):
    asset_id: str
    name: str | None = Field(description="the file's name as uploaded (for display; never a path)")
    kind: str = Field(description="image, video or midi")
    mime: str
    size: int
    created_at: str


class UploadPage(BaseModel):
    items: list[UploadItem]
    next: str | None = Field(description="pass as `before` for the next page; null on the last page")


class ModelInfo(_Open):
    id: str
    name: str
    kind: str
    studio: str
    default: bool = False
    format: str | None = None
    family: str | None = None  # sd1 | sd2 | sdxl | sdxl-refiner | sd3 | flux | builtin | unknown
    size_bytes: int | None = None
    source: str | None = None  # the hub id, "local" or "built-in" (never a server path)


class PullAccepted(_Open):
    job_id: str
    model_id: str = Field(description="the id the model is registered under when the job succeeds")
    params: dict[str, Any] = Field(default_factory=dict)


class Style(_Open):
    id: str
    name: str


class QueueHealth(_Open):
    queued: int
    running: int
    limit: int


class DiskHealth(_Open):
    path: str
    free_bytes: int
    total_bytes: int
    min_free_bytes: int
    ok: bool


class WorkerHealth(_Open):
    name: str
    alive: bool
    state: str  # idle | running | retrying | stopped | starting
    job_id: str | None = None
    last_error: str | None = None


class Health(_Open):
    status: str  # ok | degraded (see problems)
    version: str
    device: str | None = None  # where image pipelines run: cpu | cuda:N | mps
    dtype: str | None = None  # their precision (a family trained in bfloat16 may get bfloat16)
    memory: str | None = None  # normal | low | minimal (auto: chosen per model from free memory)
    queue: QueueHealth
    disk: DiskHealth | None = None
    workers: list[WorkerHealth] = []
    problems: list[str] = []


class VerifyReport(_Open):
    format: str
    mime: str | None
    size_bytes: int
    watermark: dict[str, Any]
    label: dict[str, Any]
    manifest: dict[str, Any]
    ai_generated: Literal[True, "unknown"] = Field(
        description='true when a mark of ours is found; "unknown" otherwise (a file without marks proves nothing)')


class AuditPage(BaseModel):
    items: list[dict[str, Any]]
    next: str | None


class ConsentOut(_Open):
    id: str
    subject: str
    statement: str


class TracksOut(_Open):
    tracks: list[dict[str, Any]]
    default_track: int | None
    melody: dict[str, Any]


class Instrument(BaseModel):
    program: int
    name: str
