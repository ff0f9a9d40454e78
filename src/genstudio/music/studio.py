"""The music studio: sample / compose, interpolate and vary melodies (MusicVAE), as one `Studio`.

`resolve` checks the request, fixes the seed and the tempo and instrument, and reads each source
melody (an asset through the API, a file on the command line) into the job's params; `run` decodes
with the melody model (music/service.py) and hands MIDI files to the provenance stage, which signs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from genstudio.errors import LimitError
from genstudio.jobs.base import JobContext, OutputFile
from genstudio.provenance.stage import Seal
from genstudio.studio import StudioContext

from .params import (
    PARAMS,
    REQUESTS,
    ContinueRequest,
    HarmonizeRequest,
    InterpolateRequest,
    VaryRequest,
    dump_params,
    job_params,
)
from .service import MelodyEngine, music_models_info, new_seed, source_from_midi


class MusicStudio:
    name: ClassVar[str] = "music"
    media_kinds: ClassVar[tuple[str, ...]] = ("music",)
    requests: ClassVar[dict[str, type[BaseModel]]] = dict(REQUESTS)
    router: ClassVar[str] = "genstudio.api.routes.music:router"
    cli: ClassVar[str] = "genstudio.cli.music:register"

    def __init__(self, ctx: StudioContext) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.engine = MelodyEngine(ctx.settings)

    def _source(self, ref: str, field: str, track: int | None, track_field: str) -> dict[str, Any]:
        """The source melody behind `ref`, read into the job's params (workers need no access to it)."""
        src = self.ctx.inputs.get(ref, field)
        if src.mime != "audio/midi":
            raise LimitError(
                field, f"{'asset ' + ref if src.asset_id else src.path.name} is {src.mime}, not a MIDI melody or upload"
            )
        try:
            return source_from_midi(
                src.read(), track=track, settings=self.settings, origin=src.asset_id or str(src.path)
            )
        except ValueError as exc:
            # A track that does not exist, is drums or has no notes is the track field's fault.
            blame = track_field if track is not None and str(exc).startswith("track ") else field
            raise LimitError(blame, str(exc)) from None

    def resolve(self, request: BaseModel, op: str | None = None) -> BaseModel:
        op = op or next(name for name, model in REQUESTS.items() if isinstance(request, model))
        request.check_limits(self.settings)  # type: ignore[attr-defined]
        resolved: dict[str, Any] = {"seed": new_seed(request.seed)}  # type: ignore[attr-defined]
        names: dict[str, str] = {}
        if isinstance(request, InterpolateRequest):
            resolved["_start"] = self._source(request.start, "start", request.start_track, "start_track")
            resolved["_end"] = self._source(request.end, "end", request.end_track, "end_track")
            names = {"start": request.start, "end": request.end}
        elif isinstance(request, VaryRequest | ContinueRequest | HarmonizeRequest):
            resolved["_source"] = self._source(request.source, "source", request.track, "track")
            names = {"source": request.source}
            given = int(resolved["_source"]["bars"])
            if isinstance(request, ContinueRequest) and given + request.bars > self.settings.max_bars:
                raise LimitError(
                    "bars",
                    f"the source has {given} bars: with {request.bars} more the piece would pass "
                    f"{self.settings.max_bars} bars (GENSTUDIO_MAX_BARS)",
                )
        # The params name each source by its asset id, or (command line) by its file name: never a path.
        shown = {k: v if v.isalnum() else Path(v.removeprefix("file:")).name[:64] or k for k, v in names.items()}
        return job_params(op, request.model_copy(update=shown), **resolved)  # type: ignore[arg-type]

    def params(self, raw: dict[str, Any]) -> BaseModel:
        return PARAMS.validate_python(raw)

    def inspect(self, data: bytes, fmt: str, mime: str | None) -> dict[str, Any] | None:
        from .render import inspect

        return inspect(data, fmt, mime)

    def models(self) -> list[dict[str, Any]]:
        return music_models_info(self.settings)

    def run(self, params: BaseModel, job: JobContext | None = None) -> list[OutputFile]:
        report = job.progress if job is not None else None
        outputs = self.engine.run(dump_params(params), report)
        for i, out in enumerate(outputs):
            info = {k: v for k, v in out.params.items() if k != "notes"}
            out.seal = Seal(
                title=f"genstudio melody {out.params.get('seed')}-{i + 1}",
                ai_info={"model": self.engine.model_id, "seed": out.params.get("seed"), "params": info},
            )
        return outputs
