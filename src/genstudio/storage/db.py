"""Database rows for jobs and assets (SQLModel: SQLite by default, any SQLAlchemy URL works)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint, event
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, create_engine, select

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class Job(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True)
    kind: str = Field(index=True)
    status: str = Field(default="queued", index=True)
    progress: float = 0.0
    error: str | None = None
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    attempts: int = 0
    cancel_requested: bool = False
    # Distributed mode: which worker runs the job and when it last said so (a stale beat = a dead worker).
    worker: str | None = None
    heartbeat_at: datetime | None = Field(default=None, index=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Asset(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("job_id", "position", name="uq_asset_job_position"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    kind: str = Field(index=True)  # the media: image | music | video | upload
    studio: str | None = Field(default=None, index=True)  # the studio that made it (None: an upload)
    mime: str
    # Path relative to the assets dir, always chosen by the server (never by a user).
    path: str
    size: int = 0
    sha256: str = ""
    job_id: str | None = Field(default=None, index=True, foreign_key="job.id")
    position: int | None = None
    seed: int | None = None
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    original_name: str | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)


class Consent(SQLModel, table=True):
    """A face-swap consent record: who consented (`subject`), what they agreed to, who recorded it."""

    id: str = Field(default_factory=new_id, primary_key=True)
    subject: str
    statement: str
    recorded_by: str  # the API token's identity, or "local" (CLI, loopback without a token)
    source_sha256: str = ""  # the face photo the consent covers
    created_at: datetime = Field(default_factory=utcnow, index=True)


class FaceSwapAudit(SQLModel, table=True):
    """One row per face swap (job, CLI run or live session); kept when the inputs are deleted."""

    __tablename__ = "faceswap_audit"  # type: ignore[assignment]

    id: str = Field(default_factory=new_id, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    finished_at: datetime | None = None
    actor: str
    mode: str = "job"  # job | cli | live
    consent_id: str | None = Field(default=None, index=True, foreign_key="consent.id")  # None: refused
    job_id: str | None = Field(default=None, index=True)
    # Input asset ids (uploads, deleted by the retention sweep) and their hashes (kept).
    source_asset_id: str | None = None
    target_asset_id: str | None = None
    reference_asset_id: str | None = None
    source_sha256: str = ""
    target_sha256: str = ""
    reference_sha256: str | None = None
    output_sha256: str | None = None
    output_asset_id: str | None = None
    outcome: str = "queued"  # queued | running | succeeded | failed | cancelled
    error: str | None = None
    stats: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


def make_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL: readers (status polls) never wait for the worker's writes.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    from genstudio.storage.migrate import upgrade

    upgrade(engine)
    return engine


class _StoreSession(Session):
    def __init__(self, store: Store) -> None:
        super().__init__(store.engine, expire_on_commit=False)
        self.store = store


@event.listens_for(_StoreSession, "after_flush")
def _count_asset_changes(session: _StoreSession, _ctx: Any) -> None:
    if any(isinstance(o, Asset) for group in (session.new, session.deleted, session.dirty) for o in group):
        session.store.asset_generation += 1


class Store:
    """Small repository over the engine: every method opens and closes its own session."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Bumped whenever this process adds, changes or deletes an asset row: read caches key on it.
        self.asset_generation = 0

    def session(self) -> Session:
        return _StoreSession(self)

    # Jobs
    def add_job(self, kind: str, params: dict[str, Any]) -> Job:
        job = Job(kind=kind, params=params)
        with self.session() as s:
            s.add(job)
            s.commit()
        return job

    def get_job(self, job_id: str) -> Job | None:
        with self.session() as s:
            return s.get(Job, job_id)

    def update_job(self, job_id: str, **fields: Any) -> Job | None:
        with self.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                return None
            for k, v in fields.items():
                setattr(job, k, v)
            s.add(job)
            s.commit()
            return job

    def count_jobs(self, statuses: tuple[str, ...]) -> int:
        from sqlalchemy import func

        with self.session() as s:
            stmt = select(func.count()).select_from(Job).where(Job.status.in_(statuses))  # type: ignore[attr-defined]
            return int(s.exec(stmt).one())

    def jobs_with_status(self, statuses: tuple[str, ...]) -> list[Job]:
        with self.session() as s:
            stmt = select(Job).where(Job.status.in_(statuses)).order_by(Job.created_at)  # type: ignore[attr-defined]
            return list(s.exec(stmt).all())

    # Assets
    def add_asset(self, asset: Asset) -> Asset:
        with self.session() as s:
            s.add(asset)
            s.commit()
        return asset

    def get_asset(self, asset_id: str) -> Asset | None:
        with self.session() as s:
            return s.get(Asset, asset_id)

    def job_assets(self, job_id: str) -> list[Asset]:
        with self.session() as s:
            stmt = select(Asset).where(Asset.job_id == job_id).order_by(Asset.position)  # type: ignore[arg-type]
            return list(s.exec(stmt).all())

    def delete_asset(self, asset_id: str) -> Asset | None:
        with self.session() as s:
            asset = s.get(Asset, asset_id)
            if asset is None:
                return None
            s.delete(asset)
            s.commit()
            return asset

    def all_asset_paths(self) -> set[str]:
        with self.session() as s:
            return set(s.exec(select(Asset.path)).all())

    def uploads(self, upload_kind: str | None, limit: int, before: Asset | None) -> list[Asset]:
        """Uploaded files (assets made by no job), newest first, optionally of one upload kind (midi, image,
        video); `before` is the last asset of the previous page."""
        from sqlalchemy import and_, or_

        with self.session() as s:
            stmt = select(Asset).where(Asset.job_id.is_(None), Asset.kind == "upload")  # type: ignore[union-attr]
            if before is not None:
                stmt = stmt.where(
                    or_(
                        Asset.created_at < before.created_at,
                        and_(Asset.created_at == before.created_at, Asset.id < before.id),
                    )
                )
            stmt = stmt.order_by(Asset.created_at.desc(), Asset.id.desc())  # type: ignore[attr-defined]
            rows = list(s.exec(stmt.limit(limit if not upload_kind else limit * 20)).all())
        if upload_kind:  # the kind is in the params JSON: filtered here (uploads are few)
            rows = [a for a in rows if (a.params or {}).get("upload_kind") == upload_kind]
        return rows[:limit]

    def gallery(self, kind: str | None, limit: int, before: Asset | None, studio: str | None = None) -> list[Asset]:
        """Generated assets, newest first, of one media kind and/or one studio; `before` is the last asset
        of the previous page."""
        from sqlalchemy import and_, or_

        with self.session() as s:
            stmt = select(Asset).where(Asset.job_id.is_not(None))  # type: ignore[union-attr]
            if kind:
                stmt = stmt.where(Asset.kind == kind)
            if studio:
                stmt = stmt.where(Asset.studio == studio)
            if before is not None:  # (created_at, id) order: rows made in the same instant are not skipped
                stmt = stmt.where(
                    or_(
                        Asset.created_at < before.created_at,
                        and_(Asset.created_at == before.created_at, Asset.id < before.id),
                    )
                )
            stmt = stmt.order_by(Asset.created_at.desc(), Asset.id.desc()).limit(limit)  # type: ignore[attr-defined]
            return list(s.exec(stmt).all())
