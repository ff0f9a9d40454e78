"""Face-swap safeguards around the engine: consent records, the audit log, input retention and the
C2PA manifest every output carries. No setting turns any of them off."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import select

from genstudio.config import Settings
from genstudio.errors import LimitError
from genstudio.storage.db import FINAL_STATUSES, Asset, Consent, FaceSwapAudit, Job, Store, utcnow
from genstudio.storage.files import FileStore, sha256_file  # noqa: F401 - sha256_file re-exported
from genstudio.studio import actor_for  # noqa: F401 - re-exported

FACESWAP_DESCRIPTION = "face swap: a face from a consenting subject's photo composited onto the target"
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


# Hangul fillers: letters (category Lo) that draw nothing, the usual "blank" names.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")


def visible_letters(text: str) -> int:
    """How many letters and digits a reader sees in `text`: counted after NFKC normalisation, without
    invisible (zero-width, format: Cf), control (Cc) and combining (Mn, Me) characters or blank letters."""
    import unicodedata

    return sum(
        1
        for c in unicodedata.normalize("NFKC", text)
        if unicodedata.category(c)[0] in "LN" and c not in _BLANK_LETTERS
    )


MIN_DISTINCT_LETTERS = 5  # "xxxxxxxxxxxxxxxxxxxx" is twenty letters and no statement


def reads_as_filler(text: str) -> bool:
    """Whether `text` is filler rather than words: fewer than MIN_DISTINCT_LETTERS different letters or digits
    (case-folded), or one of them making up more than half of all (keyboard mashing, one letter repeated).
    Any script passes: the rule counts characters, not words or spaces."""
    import unicodedata
    from collections import Counter

    letters = Counter(c.casefold() for c in unicodedata.normalize("NFKC", text)
                      if unicodedata.category(c)[0] in "LN" and c not in _BLANK_LETTERS)
    total = sum(letters.values())
    return len(letters) < MIN_DISTINCT_LETTERS or (total > 0 and max(letters.values()) * 2 > total)


def _without_controls(text: str) -> str:
    """`text` trimmed, without control characters (NUL, escape sequences) other than tab and newline."""
    import unicodedata

    return "".join(c for c in text if c in "\t\n" or unicodedata.category(c) != "Cc").strip()


def check_consent(consent: ConsentIn | None, settings: Settings) -> ConsentIn:
    """The consent, trimmed and without control characters; LimitError naming `consent.statement` or
    `consent.subject` otherwise. Lengths count what a person wrote and a reader sees: letters and digits
    (a statement of zero-width spaces, NULs or combining marks is empty)."""
    if consent is None:
        raise LimitError("consent", "a consent record {statement, subject} is required for every face swap")
    statement, subject = _without_controls(consent.statement), _without_controls(consent.subject)
    least = settings.faceswap_consent_min_chars
    if not statement:
        raise LimitError("consent.statement", f"a consent statement is required (at least {least} characters)")
    letters = visible_letters(statement)
    if letters < least:
        raise LimitError(
            "consent.statement",
            f"the consent statement has {letters} visible letters or digits; at least {least} are required "
            "(GENSTUDIO_FACESWAP_CONSENT_MIN_CHARS; invisible, control and combining characters do not count)",
        )
    if reads_as_filler(statement):
        raise LimitError(
            "consent.statement",
            "the consent statement reads as filler (one letter repeated, or fewer than "
            f"{MIN_DISTINCT_LETTERS} different letters): write what the person agreed to, in words",
        )
    if not visible_letters(subject):
        raise LimitError(
            "consent.subject",
            "name the person who consented (the subject whose face is used) in visible letters or digits",
        )
    return ConsentIn(statement=statement, subject=subject)


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
