"""Asset files on disk: server-chosen names, written to a temporary file and renamed into place."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

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
        """Write bytes durably; returns (size, sha256). Readers never see a partial file."""
        dest = self.abspath(relpath)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return len(data), hashlib.sha256(data).hexdigest()

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
