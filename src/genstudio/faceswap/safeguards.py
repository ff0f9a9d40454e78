"""Face-swap safeguards around the engine: consent records, the audit log, input retention and the
C2PA manifest every output carries. No setting turns any of them off."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import select

from genstudio.config import Settings
from genstudio.image.params import LimitError
from genstudio.provenance.manifest import WATERMARK_LABEL, build_manifest
from genstudio.storage.db import FINAL_STATUSES, Asset, Consent, FaceSwapAudit, Job, Store, utcnow
from genstudio.storage.files import FileStore

COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA = (
    "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
)
FACESWAP_LABEL = "org.genstudio.faceswap"
Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
CORNER_NAMES: tuple[str, ...] = ("top-left", "top-right", "bottom-left", "bottom-right")
MAX_SUBJECT_CHARS = 200
MAX_STATEMENT_CHARS = 4000
OPEN_OUTCOMES = ("queued", "running")


class ConsentIn(BaseModel):
    """Who consented (`subject`, the person whose face is used) and what they agreed to."""

    model_config = ConfigDict(extra="forbid")
    statement: str = Field(default="", max_length=MAX_STATEMENT_CHARS)
    subject: str = Field(default="", max_length=MAX_SUBJECT_CHARS)


def check_consent(consent: ConsentIn | None, settings: Settings) -> ConsentIn:
    """The consent, trimmed; LimitError naming `consent.statement` or `consent.subject` otherwise."""
    if consent is None:
        raise LimitError("consent", "a consent record {statement, subject} is required for every face swap")
    statement, subject = consent.statement.strip(), consent.subject.strip()
    least = settings.faceswap_consent_min_chars
    if not statement:
        raise LimitError("consent.statement", f"a consent statement is required (at least {least} characters)")
    if len(statement) < least:
        raise LimitError(
            "consent.statement",
            f"the consent statement has {len(statement)} characters; at least {least} are required "
            "(GENSTUDIO_FACESWAP_CONSENT_MIN_CHARS)",
        )
    if not subject:
        raise LimitError("consent.subject", "name the person who consented (the subject whose face is used)")
    return ConsentIn(statement=statement, subject=subject)


def actor_for(token: str | None) -> str:
    """Who recorded a consent or ran a swap: the API token's fingerprint (never the token), or "local"."""
    if not token:
        return "local"
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_consent(store: Store, consent: ConsentIn, *, recorded_by: str, source_sha256: str) -> Consent:
    row = Consent(
        subject=consent.subject, statement=consent.statement, recorded_by=recorded_by, source_sha256=source_sha256
    )
    with store.session() as s:
        s.add(row)
        s.commit()
    return row


def open_audit(store: Store, **fields: Any) -> FaceSwapAudit:
    row = FaceSwapAudit(**fields)
    with store.session() as s:
        s.add(row)
        s.commit()
    return row


def update_audit(store: Store, audit_id: str, **fields: Any) -> FaceSwapAudit | None:
    """Set fields on an audit row; `outcome` in a final state also stamps `finished_at`."""
    with store.session() as s:
        row = s.get(FaceSwapAudit, audit_id)
        if row is None:
            return None
        for key, value in fields.items():
            setattr(row, key, value)
        if fields.get("outcome") not in (None, *OPEN_OUTCOMES) and row.finished_at is None:
            row.finished_at = utcnow()
        s.add(row)
        s.commit()
        return row


def get_consent(store: Store, consent_id: str) -> Consent | None:
    with store.session() as s:
        return s.get(Consent, consent_id)


def _reconcile(s: Any, row: FaceSwapAudit) -> bool:
    """Bring an audit row in line with its job (a job whose process died never reported back).
    Returns True when the row changed."""
    if row.job_id is None:
        return False
    changed = False
    job = s.get(Job, row.job_id)
    if job is not None and row.outcome in OPEN_OUTCOMES and job.status in FINAL_STATUSES:
        row.outcome, row.error = job.status, row.error or job.error
        row.finished_at = row.finished_at or job.finished_at or utcnow()
        changed = True
    if row.output_asset_id is None and job is not None and job.status == "succeeded":
        asset = s.exec(select(Asset).where(Asset.job_id == row.job_id)).first()
        if asset is not None:
            row.output_asset_id, row.output_sha256 = asset.id, asset.sha256
            changed = True
    return changed


def audit_page(store: Store, limit: int, before: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Audit rows newest first, `limit` per page; `before` is the last id of the previous page."""
    from sqlalchemy import and_, or_

    with store.session() as s:
        stmt = select(FaceSwapAudit)
        if before is not None:
            ref = s.get(FaceSwapAudit, before)
            if ref is None:
                raise LimitError("before", f"unknown cursor {before!r}")
            stmt = stmt.where(
                or_(
                    FaceSwapAudit.created_at < ref.created_at,
                    and_(FaceSwapAudit.created_at == ref.created_at, FaceSwapAudit.id < ref.id),
                )
            )
        stmt = stmt.order_by(FaceSwapAudit.created_at.desc(), FaceSwapAudit.id.desc()).limit(limit + 1)  # type: ignore[attr-defined]
        rows = list(s.exec(stmt).all())
        more = len(rows) > limit
        rows = rows[:limit]
        dirty = [r for r in rows if _reconcile(s, r)]
        for r in dirty:
            s.add(r)
        if dirty:
            s.commit()
        consents = {c.id: c for c in s.exec(select(Consent).where(Consent.id.in_({r.consent_id for r in rows})))}  # type: ignore[attr-defined]
        items = [audit_json(r, consents.get(r.consent_id)) for r in rows]
    return items, (rows[-1].id if more and rows else None)


def audit_json(row: FaceSwapAudit, consent: Consent | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_at": row.created_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "actor": row.actor,
        "mode": row.mode,
        "job_id": row.job_id,
        "outcome": row.outcome,
        "error": row.error,
        "consent": consent_json(consent) if consent else {"id": row.consent_id},
        "source": {"asset_id": row.source_asset_id, "sha256": row.source_sha256},
        "target": {"asset_id": row.target_asset_id, "sha256": row.target_sha256},
        "reference": {"asset_id": row.reference_asset_id, "sha256": row.reference_sha256}
        if row.reference_sha256
        else None,
        "output": {"asset_id": row.output_asset_id, "sha256": row.output_sha256},
        "stats": row.stats or {},
    }


def consent_json(c: Consent) -> dict[str, Any]:
    return {
        "id": c.id,
        "subject": c.subject,
        "statement": c.statement,
        "recorded_by": c.recorded_by,
        "source_sha256": c.source_sha256,
        "created_at": c.created_at.isoformat(),
    }


def sweep_retention(
    store: Store, files: FileStore, retention_hours: float, *, now: datetime | None = None
) -> list[str]:
    """Delete uploads used by face swap (sources, targets, references) once they are older than the
    retention period; outputs, consent and audit rows stay. Inputs of swaps still queued or running are
    kept until those end. Returns the ids of the deleted assets."""
    cutoff = (now or utcnow()) - timedelta(hours=retention_hours)
    with store.session() as s:
        used: set[str] = set()
        busy: set[str] = set()
        for row in s.exec(select(FaceSwapAudit)).all():
            ids = {row.source_asset_id, row.target_asset_id, row.reference_asset_id} - {None}
            used |= ids  # type: ignore[arg-type]
            if row.outcome in OPEN_OUTCOMES:
                job = s.get(Job, row.job_id) if row.job_id else None
                if job is None or job.status not in FINAL_STATUSES:
                    busy |= ids  # type: ignore[arg-type]
        if not used:
            return []
        stmt = select(Asset).where(
            Asset.id.in_(used - busy),  # type: ignore[attr-defined]
            Asset.kind == "upload",
            Asset.created_at < cutoff,
        )
        doomed = list(s.exec(stmt).all())
        for asset in doomed:
            s.delete(asset)
        s.commit()
    for asset in doomed:
        files.delete(asset.path)
    return [a.id for a in doomed]


def faceswap_manifest(*, title: str, mime: str, info: dict[str, Any], watermark: dict[str, Any]) -> dict[str, Any]:
    """A manifest naming the file a composite made with a trained model (IPTC
    compositeWithTrainedAlgorithmicMedia), with the consent id and input hashes in `info`."""
    manifest = build_manifest(
        title=title,
        mime=mime,
        ai_info=info,
        extra_assertions=[{"label": WATERMARK_LABEL, "data": watermark}],
    )
    for assertion in manifest["assertions"]:
        if assertion["label"] == "c2pa.actions":
            for action in assertion["data"]["actions"]:
                action["digitalSourceType"] = COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA
                action["description"] = "face swap: a face from a consenting subject's photo composited onto the target"
    return manifest
