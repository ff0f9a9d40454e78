"""Downloads from the Hugging Face hub (HF_ENDPOINT / HF_TOKEN honoured) for every studio's model manager: a
dry run first (names and sizes, nothing fetched) so a repo without the files a studio loads is refused before
any byte and progress has its true total; then the download, removed again if it fails or is cancelled; the
hub's errors said in one line (no such repo, no such revision, offline)."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable
from fnmatch import fnmatch
from pathlib import Path
from typing import Any


class HubError(ValueError):
    """A download could not be done; the message says why (one line)."""


def download(repo_id: str, target: Path, *, allow: list[str], ignore: list[str] | None = None,
             revision: str | None = None, progress: Callable[[int, int], None] | None = None,
             check: Callable[[list[str]], None] | None = None, look: list[str] | None = None) -> list[str]:
    """Fetch the files of `repo_id` that match `allow` (and not `ignore`) into `target`; returns their names.
    `check(names)` may raise (a ValueError naming what is missing) before anything is fetched; it sees the files
    matching `look` (default: `allow`), so it can name what the repo has. A raise from `progress(done, total)`
    (a cancel) stops the download; a download that did not finish is removed."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    existed = target.exists()
    where: dict[str, Any] = {
        "revision": revision,
        "local_dir": target,
        "allow_patterns": allow,
        "ignore_patterns": ignore,
        "endpoint": os.environ.get("HF_ENDPOINT") or None,  # read now: the library reads it at import
    }
    try:
        plan = snapshot_download(repo_id, dry_run=True, tqdm_class=byte_counter(None, 0),
                                 **{**where, "allow_patterns": look or allow})
        if check is not None:
            check([p.filename for p in plan])
        plan = [p for p in plan if any(fnmatch(p.filename, pattern) for pattern in allow)]
        names = [p.filename for p in plan]
        total = sum(p.file_size or 0 for p in plan if p.will_download)
        snapshot_download(repo_id, tqdm_class=byte_counter(progress, total), max_workers=2, **where)
        return names
    except BaseException as exc:
        if not existed:
            shutil.rmtree(target, ignore_errors=True)
        if isinstance(exc, ValueError) and not isinstance(exc, HubError) and _is_check(exc):
            raise
        if not isinstance(exc, Exception) or type(exc).__name__ == "JobCancelled":
            raise
        endpoint = where["endpoint"] or constants.ENDPOINT
        causes = error_chain(exc)  # a dry run wraps the hub's own error
        if any(isinstance(e, RepositoryNotFoundError) for e in causes):
            why = f"the hub at {endpoint} has no model repo {repo_id!r} (a typo, or private: set HF_TOKEN)"
        elif any(isinstance(e, RevisionNotFoundError) for e in causes):
            why = f"{repo_id} has no revision {revision!r}"
        elif offline(exc) or type(exc).__name__ == "DryRunError" and "internet connection" in str(exc):
            why = f"no connection to the hub at {endpoint} (offline? download the file elsewhere and `models add` it)"
        else:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            why = f"{type(exc).__name__}: {first}"
        raise HubError(f"could not download {repo_id}: {why}") from exc


def _is_check(exc: BaseException) -> bool:
    """A studio's own refusal from `check` (its ValueError subclasses), not a library error."""
    return type(exc).__module__.startswith("genstudio")


def offline(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in error_chain(exc)}
    return bool(names & {"ConnectError", "ConnectTimeout", "ConnectionError", "OfflineModeIsEnabled",
                         "LocalEntryNotFoundError", "NewConnectionError", "TimeoutException"})


def error_chain(exc: BaseException | None) -> list[BaseException]:
    out = []
    while exc is not None and len(out) < 8:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def byte_counter(report: Callable[[int, int], None] | None, total: int) -> type:
    """A tqdm class for huggingface_hub's byte bars that prints nothing and hands (done, total) to `report`."""
    from tqdm.std import tqdm

    bars: list[Any] = []

    class ByteCounter(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["file"] = io.StringIO()
            kwargs.pop("name", None)
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)
            bars.append(self)

        def update(self, n: float | None = 1) -> bool | None:
            out = super().update(n)
            if report is not None and self.unit == "B" and total:
                report(min(int(max(b.n for b in bars if b.unit == "B")), total), total)
            return out

    return ByteCounter
