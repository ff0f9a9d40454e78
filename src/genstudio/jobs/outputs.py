"""Commit a job's output files and rows together, replacing what an earlier attempt left: a job
delivered twice (re-run after a crash, at-least-once delivery) never ends with two sets of assets."""

from __future__ import annotations

from sqlmodel import select

from genstudio.jobs.base import JobFailed, OutputFile
from genstudio.storage.db import Asset, Job, Store, new_id
from genstudio.storage.files import FileStore


def save_outputs(
    store: Store, files: FileStore, job_id: str, outputs: list[OutputFile], *, owner: str | None = None
) -> list[str]:
    """Write files atomically, then in one transaction swap the job's asset rows. Returns asset ids.

    With `owner`, the job row must still name that worker (a worker presumed dead that wakes up
    must not overwrite the work of the one that took over)."""
    written: list[str] = []
    old_paths: list[str] = []
    ids: list[str] = []
    try:
        rows = []
        for position, out in enumerate(outputs):
            asset_id = new_id()
            rel = files.relpath_for(asset_id, out.mime)
            size, digest = files.write_atomic(rel, out.data)
            written.append(rel)
            ids.append(asset_id)
            rows.append(
                Asset(
                    id=asset_id,
                    kind=out.kind,
                    mime=out.mime,
                    path=rel,
                    size=size,
                    sha256=digest,
                    job_id=job_id,
                    position=position,
                    seed=out.seed,
                    params=out.params,
                )
            )
        with store.session() as s:
            job = s.exec(select(Job).where(Job.id == job_id).with_for_update()).one()
            if owner is not None and job.worker != owner:
                raise JobFailed("another worker took this job over")
            for old in s.exec(select(Asset).where(Asset.job_id == job_id)).all():
                old_paths.append(old.path)
                s.delete(old)
            s.flush()
            for row in rows:
                row.studio = job.kind  # the job kind is the studio's name
                s.add(row)
            s.commit()
    except BaseException:
        for rel in written:
            files.delete(rel)
        raise
    for rel in old_paths:
        files.delete(rel)
    return ids
