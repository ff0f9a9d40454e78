"""Music studio routes: sample / compose, interpolate, vary; the tracks of an uploaded MIDI file."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from genstudio.api.deps import State
from genstudio.image.params import LimitError
from genstudio.music.params import InterpolateRequest, SampleRequest, VaryRequest, job_params
from genstudio.music.service import resolve_request, source_from_midi
from genstudio.storage.db import Asset

router = APIRouter(prefix="/api/music", tags=["music"])


def _midi_asset(state: State, asset_id: str, field: str) -> tuple[Asset, bytes]:
    a = state.store.get_asset(asset_id) if asset_id.isalnum() else None
    if a is None:
        raise LimitError(field, f"no asset {asset_id!r}")
    if a.mime != "audio/midi":
        raise LimitError(field, f"asset {asset_id} is {a.mime}, not a MIDI melody or upload")
    path = state.files.abspath(a.path)
    if not path.is_file():
        raise HTTPException(410, detail=f"{field}: the file of {asset_id} is gone")
    return a, path.read_bytes()


def _source(state: State, asset_id: str, field: str, track: int | None, track_field: str) -> dict[str, Any]:
    _, data = _midi_asset(state, asset_id, field)
    try:
        return source_from_midi(data, track=track, settings=state.settings, origin=asset_id)
    except ValueError as exc:
        # A track that does not exist, is drums or has no notes is the track field's fault.
        blame = track_field if track is not None and str(exc).startswith("track ") else field
        raise LimitError(blame, str(exc)) from None


def _submit(state: State, op: str, req: Any, **extra: Any) -> dict[str, Any]:
    params = job_params(op, req, **extra)
    job = state.queue.submit("music", params)
    public = {k: v for k, v in params.items() if not k.startswith("_")}
    for name in ("_start", "_end", "_source"):
        if name in params:
            src = params[name]
            public[f"{name[1:]}_melody"] = {k: src[k] for k in ("bars", "tempo", "program", "track", "dropped")}
    return {"job_id": job.id, "params": public}


@router.post("/sample", status_code=202)
def sample(req: SampleRequest, state: State) -> dict[str, Any]:
    """N new melodies; with key, chords or density it composes to that request."""
    return _submit(state, "sample", req, **resolve_request(req, state.settings))


@router.post("/interpolate", status_code=202)
def interpolate(req: InterpolateRequest, state: State) -> dict[str, Any]:
    """Melodies along the latent path between two melodies (earlier results or uploaded MIDI)."""
    resolved = resolve_request(req, state.settings)
    start = _source(state, req.start, "start", req.start_track, "start_track")
    end = _source(state, req.end, "end", req.end_track, "end_track")
    return _submit(state, "interpolate", req, **resolved, _start=start, _end=end)


@router.post("/vary", status_code=202)
def vary(req: VaryRequest, state: State) -> dict[str, Any]:
    """Variations of a melody, `similarity` from 0 (unrelated) to 1 (the same)."""
    resolved = resolve_request(req, state.settings)
    source = _source(state, req.source, "source", req.track, "track")
    return _submit(state, "vary", req, **resolved, _source=source)


@router.get("/tracks/{asset_id}")
def tracks(asset_id: str, state: State) -> dict[str, Any]:
    """The tracks of a MIDI asset and what taking the melody line of the default track drops."""
    from genstudio.music.render import extract_melody, load_midi, midi_tracks

    if not asset_id.isalnum() or state.store.get_asset(asset_id) is None:
        raise HTTPException(404, detail=f"asset_id: no asset {asset_id!r}")
    _, data = _midi_asset(state, asset_id, "asset_id")
    try:
        info = midi_tracks(load_midi(data))
        ex = extract_melody(data, max_bars=state.settings.max_bars)
    except ValueError as exc:
        raise LimitError("asset_id", str(exc)) from None
    return {
        "tracks": [t.__dict__ for t in info],
        "default_track": ex.track,
        "melody": {"bars": ex.bars, "notes": len(ex.notes), "dropped": ex.dropped, "summary": ex.summary()},
    }


@router.get("/instruments")
def instruments() -> list[dict[str, Any]]:
    """The 128 General MIDI programs."""
    import pretty_midi

    return [{"program": i, "name": n} for i, n in enumerate(pretty_midi.constants.INSTRUMENT_MAP)]
