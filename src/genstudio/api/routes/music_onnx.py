"""The melody model as ONNX for in-browser sampling: exported once into `<data_dir>/onnx/melody-2bar/`,
served by fixed file name with an ETag, re-exported when the model's weights change."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Response
from fastapi.responses import FileResponse

from genstudio.api.deps import State
from genstudio.music.onnx_export import (
    BUILTIN_MELODY_MODEL,
    CONFIG_FILE,
    DECODER_FILE,
    ENCODER_FILE,
    export_onnx,
    sha256_file,
)

router = APIRouter(prefix="/api/music/onnx", tags=["music"])

MEDIA_TYPES = {ENCODER_FILE: "application/octet-stream", DECODER_FILE: "application/octet-stream"}
MEDIA_TYPES[CONFIG_FILE] = "application/json"
CACHE_NAME = "melody-2bar"
MODEL_DIR = BUILTIN_MELODY_MODEL  # the model the browser gets; read at each request
_lock = threading.Lock()
# cache folder -> (fingerprint of the source weights, {file name: sha256})
_ready: dict[Path, tuple[tuple[int, int, str], dict[str, str]]] = {}


def _fingerprint(model_dir: Path) -> tuple[int, int, str]:
    st = (model_dir / "model.safetensors").stat()
    return st.st_mtime_ns, st.st_size, str(model_dir.resolve())


def _cached_hashes(out_dir: Path, source_sha256: str) -> dict[str, str] | None:
    """The files' sha256s if `out_dir` holds a complete export of weights with `source_sha256`."""
    try:
        cfg = json.loads((out_dir / CONFIG_FILE).read_text())
        files = cfg["files"]
        if cfg.get("source_sha256") != source_sha256:
            return None
        if any((out_dir / name).stat().st_size != meta["bytes"] for name, meta in files.items()):
            return None
        hashes = {name: meta["sha256"] for name, meta in files.items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    hashes[CONFIG_FILE] = hashlib.sha256((out_dir / CONFIG_FILE).read_bytes()).hexdigest()
    return hashes


def ensure_exported(model_dir: Path, out_dir: Path) -> dict[str, str]:
    """Export `model_dir` into `out_dir` unless a current export is there; returns {file name: sha256}.

    One export at a time per process (the lock); export_onnx renames each finished file into place and
    writes config.json last, and the export is deterministic, so two processes racing write the same bytes.
    """
    key = _fingerprint(model_dir)
    with _lock:
        hit = _ready.get(out_dir)
        if hit is not None and hit[0] == key:
            return hit[1]
        hashes = _cached_hashes(out_dir, sha256_file(model_dir / "model.safetensors"))
        if hashes is None:
            export_onnx(model_dir, out_dir)
            hashes = _cached_hashes(out_dir, sha256_file(model_dir / "model.safetensors"))
            if hashes is None:
                raise RuntimeError(f"export into {out_dir} did not leave a complete set of files")
        _ready[out_dir] = (key, hashes)
        return hashes


@router.get(
    "/{name}",
    response_class=Response,
    responses={
        200: {"description": "the file", "content": {"application/octet-stream": {}, "application/json": {}}},
        304: {"description": "unchanged since the ETag sent in If-None-Match"},
        404: {"description": "not one of the three file names"},
        503: {"description": "the model could not be exported"},
    },
)
def onnx_file(name: str, state: State, if_none_match: Annotated[str | None, Header()] = None) -> Any:
    """One of `melody_encoder.onnx`, `melody_decoder.onnx`, `config.json` (exported on first request)."""
    if name not in MEDIA_TYPES:
        raise HTTPException(404, f"no such file {name!r}: one of {', '.join(MEDIA_TYPES)}")
    out_dir = state.settings.data_dir / "onnx" / CACHE_NAME
    try:
        hashes = ensure_exported(MODEL_DIR, out_dir)
    except (OSError, RuntimeError, ValueError) as e:
        raise HTTPException(503, f"the melody model could not be exported to ONNX: {e}") from e
    etag = f'"{hashes[name]}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if if_none_match is not None and etag in (t.strip() for t in if_none_match.split(",")):
        return Response(status_code=304, headers=headers)
    return FileResponse(out_dir / name, media_type=MEDIA_TYPES[name], headers=headers)
