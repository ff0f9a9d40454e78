"""Asset files on disk: server-chosen names, written to a temporary file and renamed into place."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from genstudio.errors import DiskFull, is_disk_full

# Scratch files made outside the data dir (where no settings reach, e.g. verify's probe copies) carry this
# prefix in the system temp dir, so that the sweep at start finds what a crash left there.
SCRATCH_PREFIX = "genstudio-scratch-"

EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "audio/midi": ".mid",
    "audio/wav": ".wav",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "video/x-matroska": ".mkv",
    "video/x-msvideo": ".avi",
    "application/octet-stream": ".bin",
}


def user_file_mode(path: str | Path) -> None:
    """Files written into a user's folder get the mode a plain `open` would give (0666 minus the umask),
    not mkstemp's 0600."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def atomic_write(
    dest: Path,
    data: bytes | Callable[[Path], None],
    *,
    tmp_dir: Path | None = None,
    durable: bool = False,
    mode: int | str | None = None,
) -> Path:
    """Write `dest` so that readers never see a partial file: a temporary file (in `tmp_dir`, default
    beside `dest`, same filesystem) renamed into place. `data` is bytes or a function that writes the
    temporary path. `durable` fsyncs first; `mode` is a file mode, or "user" for the umask's mode.
    On any failure the temporary file is removed and `dest` is left as it was."""
    dest = Path(dest)
    fd, name = tempfile.mkstemp(dir=tmp_dir or dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(name)
    try:
        if callable(data):
            os.close(fd)
            data(tmp)
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
        if mode == "user":
            user_file_mode(tmp)
        elif isinstance(mode, int):
            os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """The hex SHA-256 of a file, read in chunks (videos can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class FileStore:
    def __init__(self, root: Path, tmp_dir: Path) -> None:
        self.root = root
        self.tmp_dir = tmp_dir
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def relpath_for(self, asset_id: str, mime: str) -> str:
        # Two-level fan-out keeps directories small; the id is a uuid hex we generated.
        if not asset_id.isalnum():
            raise ValueError("asset id must be alphanumeric")
        return f"{asset_id[:2]}/{asset_id}{EXTENSIONS.get(mime, '.bin')}"

    def abspath(self, relpath: str) -> Path:
        path = (self.root / relpath).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError("path escapes the assets directory")
        return path

    def write_atomic(self, relpath: str, data: bytes) -> tuple[int, str]:
        """Write bytes durably; returns (size, sha256). Readers never see a partial file. A full disk
        raises DiskFull (saying how much was needed and how much is free); nothing is left behind."""
        dest = self.abspath(relpath)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(dest, data, tmp_dir=self.tmp_dir, durable=True)
        except OSError as exc:
            if is_disk_full(exc):
                raise self.full(f"could not write {len(data):,} bytes") from exc
            raise
        return len(data), hashlib.sha256(data).hexdigest()

    def usage(self) -> DiskUsage:
        u = shutil.disk_usage(self.root)
        return DiskUsage(path=str(self.root), free_bytes=u.free, total_bytes=u.total)

    def full(self, what: str) -> DiskFull:
        """The error for a write that found no room, with the free space now."""
        try:
            free = f"{self.usage().free_bytes:,} bytes free"
        except OSError:
            free = "free space unknown"
        return DiskFull(f"the data disk is full: {what} ({free} under {self.root}); delete assets to make room")

    def delete(self, relpath: str) -> None:
        self.abspath(relpath).unlink(missing_ok=True)

    def sweep(self, known: set[str]) -> list[str]:
        """Remove temporary leftovers and files no row points to (a crash between write and commit)."""
        removed: list[str] = []
        for part in self.tmp_dir.glob("*.part"):
            part.unlink(missing_ok=True)
            removed.append(str(part))
        for path in self.root.glob("*/*"):
            rel = path.relative_to(self.root).as_posix()
            if path.is_file() and rel not in known:
                path.unlink(missing_ok=True)
                removed.append(rel)
        return removed

    def sweep_tmp(self, *, older_than_s: float = 0.0) -> list[str]:
        """Remove scratch files of every kind (video parts, probes, renders, uploads in flight) from the
        data dir's tmp folder, and genstudio's own leftovers in the system temp dir. At start nothing is
        in flight (`older_than_s` 0 in the tmp folder); the system temp dir is shared with other
        genstudio processes, so there only entries older than an hour go."""
        removed: list[str] = []
        now = time.time()
        system = Path(tempfile.gettempdir())
        places = [(self.tmp_dir, "", older_than_s), (system, SCRATCH_PREFIX, max(older_than_s, 3600.0))]
        for folder, prefix, age in places:
            try:
                entries = list(folder.iterdir())
            except OSError:
                continue
            for entry in entries:
                if prefix and not entry.name.startswith(prefix):
                    continue
                try:
                    if age and now - entry.lstat().st_mtime < age:
                        continue
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
                except OSError:
                    continue
                removed.append(str(entry))
        return removed


@dataclass
class DiskUsage:
    path: str
    free_bytes: int
    total_bytes: int
