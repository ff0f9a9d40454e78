"""Music studio routes: sample, interpolate, vary, continue, harmonize; the tracks of an uploaded MIDI file."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from genstudio.api.deps import AssetRow, State, asset_file
from genstudio.api.schemas import Instrument, JobAccepted, TracksOut
from genstudio.errors import LimitError
from genstudio.music.params import (
    ContinueRequest,
    HarmonizeRequest,
    InterpolateRequest,
    SampleRequest,
    VaryRequest,
    dump_params,
)

router = APIRouter(prefix="/api/music", tags=["music"])


def _submit(
    state: State,
    op: str,
    req: SampleRequest | InterpolateRequest | VaryRequest | ContinueRequest | HarmonizeRequest,
) -> JobAccepted:
    params = dump_params(state.studios["music"].resolve(req, op))
    job = state.queue.submit("music", params)
    public = {k: v for k, v in params.items() if not k.startswith("_")}
    for name in ("_start", "_end", "_source"):
        if name in params:
            src = params[name]
            public[f"{name[1:]}_melody"] = {k: src[k] for k in ("bars", "tempo", "program", "track", "dropped")}
    return JobAccepted(job_id=job.id, params=public)


@router.post("/sample", status_code=202)
def sample(req: SampleRequest, state: State) -> JobAccepted:
    """N new melodies; with key, chords or density it composes to that request."""
    return _submit(state, "sample", req)


@router.post("/interpolate", status_code=202)
def interpolate(req: InterpolateRequest, state: State) -> JobAccepted:
    """Melodies along the latent path between two melodies (earlier results or uploaded MIDI)."""
    return _submit(state, "interpolate", req)


@router.post("/vary", status_code=202)
def vary(req: VaryRequest, state: State) -> JobAccepted:
    """Variations of a melody, `similarity` from 0 (unrelated) to 1 (the same)."""
    return _submit(state, "vary", req)


@router.post("/continue", status_code=202)
def continue_(req: ContinueRequest, state: State) -> JobAccepted:
    """The source melody followed by `bars` new bars in its key and style, `n` times (long-melody model)."""
    return _submit(state, "continue", req)


@router.post("/harmonize", status_code=202)
def harmonize(req: HarmonizeRequest, state: State) -> JobAccepted:
    """Alto, tenor and bass (or the voices asked for) around the source melody, as Bach's chorales (Coconet)."""
    return _submit(state, "harmonize", req)


@router.get("/tracks/{asset_id}")
def tracks(
    asset: AssetRow, state: State, track: Annotated[int | None, Query(ge=0, le=10_000)] = None
) -> TracksOut:
    """The tracks of a MIDI asset and the melody line of one (`track`, default: the busiest non-drum
    track): its notes on the 16th grid and what taking it drops."""
    from genstudio.api.routes.uploads import melody_summary
    from genstudio.music.render import extract_melody, load_midi, midi_tracks

    if asset.mime != "audio/midi":
        raise LimitError("asset_id", f"asset {asset.id} is {asset.mime}, not a MIDI melody or upload")
    data = asset_file(state, asset).read_bytes()
    try:
        info = midi_tracks(load_midi(data))
        default = extract_melody(data, max_bars=state.settings.max_bars)
    except ValueError as exc:
        raise LimitError("asset_id", str(exc)) from None
    try:
        ex = default if track is None else extract_melody(data, track=track, max_bars=state.settings.max_bars)
    except ValueError as exc:
        raise LimitError("track", str(exc)) from None
    return TracksOut(tracks=[t.__dict__ for t in info], default_track=default.track, melody=melody_summary(ex))


@router.get("/instruments")
def instruments() -> list[Instrument]:
    """The 128 General MIDI programs."""
    import pretty_midi

    return [Instrument(program=i, name=n) for i, n in enumerate(pretty_midi.constants.INSTRUMENT_MAP)]
