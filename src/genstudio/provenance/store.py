"""The manifest store: every manifest the studio signs, kept by the id its watermark carries, so that a copy
that lost its embedded manifest (a re-encode, a screenshot) gets its credentials back through the mark
(C2PA's soft binding)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from genstudio.storage.files import atomic_write

_ID = re.compile(r"^[0-9a-f]{12}$")


class ManifestStore:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def _path(self, mark_id: str) -> Path:
        if not _ID.match(mark_id):
            raise ValueError(f"mark id must be 12 hex digits, got {mark_id!r}")
        return self.folder / mark_id[:2] / f"{mark_id}.json"

    def put(self, mark_id: str, manifest: dict[str, Any]) -> None:
        path = self._path(mark_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(manifest, sort_keys=True, default=str).encode())

    def get(self, mark_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._path(mark_id).read_text())
        except (OSError, ValueError):
            return None
