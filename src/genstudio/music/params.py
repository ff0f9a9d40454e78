"""Music requests: one pydantic model per operation, shared by the API, the CLI and the job rows."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from genstudio.config import Settings
from genstudio.errors import LimitError

from .theory import parse_key, parse_progression


def check_n(n: int, s: Settings, what: str = "melodies") -> None:
    if n > s.max_melodies:
        raise LimitError("n", f"at most {s.max_melodies} {what} (GENSTUDIO_MAX_MELODIES)")


def check_bars(bars: int, s: Settings) -> None:
    if bars > s.max_bars:
        raise LimitError("bars", f"at most {s.max_bars} bars (GENSTUDIO_MAX_BARS)")
    if bars % 2:
        raise LimitError("bars", f"must be even: the model writes 2 bars at a time (got {bars})")


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=0.5, ge=0.0, le=2.0, description="Mood: 0 = safest, 2 = wildest.")
    tempo: float | None = Field(default=None, description="Beats per minute (default 120, or the source's).")
    instrument: int | str | None = Field(
        default=None, description="General MIDI program 0-127 or a name like 'violin' (default piano, or the source's)."
    )
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1, description="Random when absent.")

    def check_common(self, s: Settings) -> None:
        if self.tempo is not None and not s.min_tempo <= self.tempo <= s.max_tempo:
            raise LimitError("tempo", f"must be within {s.min_tempo:g}-{s.max_tempo:g} BPM (got {self.tempo:g})")
        if self.instrument is None:
            return
        if isinstance(self.instrument, str) and len(self.instrument) > 64:
            raise LimitError("instrument", "at most 64 characters")
        from .render import instrument_program

        try:
            instrument_program(self.instrument)
        except ValueError as exc:
            raise LimitError("instrument", str(exc)) from None


class SampleRequest(_Common):
    """New melodies, optionally composed to a request (key, chords, density)."""

    n: int = Field(default=4, ge=1, description="How many melodies.")
    bars: int = Field(default=2, ge=2, description="Length in 4/4 bars (even: the model writes 2 bars at a time).")
    key: str | None = Field(default=None, description="'D minor', 'Eb major'... None keeps the model's key.")
    chords: str | None = Field(default=None, description="One chord per bar, repeating: 'C G Am F'.")
    density: float | None = Field(
        default=None, ge=-1.0, le=1.0, description="Rhythm density: -1 sparse .. +1 busy (latent attribute vector)."
    )
    accompaniment: bool = Field(
        default=False,
        description="Add a backing: a chord part and a bass line from the chords (given, or picked to fit).",
    )

    def check_limits(self, s: Settings) -> None:
        self.check_common(s)
        check_n(self.n, s)
        check_bars(self.bars, s)
        if self.key is not None:
            if len(self.key) > 32:
                raise LimitError("key", "at most 32 characters")
            try:
                parse_key(self.key)
            except ValueError as exc:
                raise LimitError("key", str(exc)) from None
        if self.chords is not None:
            if len(self.chords) > 2000:
                raise LimitError("chords", "at most 2000 characters")
            try:
                chords = parse_progression(self.chords)
            except ValueError as exc:
                raise LimitError("chords", str(exc)) from None
            if len(chords) > s.max_bars:
                raise LimitError("chords", f"at most {s.max_bars} chords (one per bar)")


class InterpolateRequest(_Common):
    """Melodies along the slerp between two melodies' latent codes, endpoints included."""

    start: str = Field(min_length=1, max_length=64, description="Asset id of a melody or an uploaded MIDI.")
    end: str = Field(min_length=1, max_length=64, description="Asset id of a melody or an uploaded MIDI.")
    steps: int = Field(default=5, ge=2, description="Melodies on the path, endpoints included.")
    start_track: int | None = Field(default=None, ge=0, description="Track of an uploaded MIDI (default: busiest).")
    end_track: int | None = Field(default=None, ge=0)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0 = the path's most likely melodies.")

    def check_limits(self, s: Settings) -> None:
        self.check_common(s)
        if self.steps > s.max_interpolation_steps:
            raise LimitError("steps", f"at most {s.max_interpolation_steps} (GENSTUDIO_MAX_INTERPOLATION_STEPS)")


class VaryRequest(_Common):
    """Variations of a melody: each 2-bar window is encoded and re-sampled near its code."""

    source: str = Field(min_length=1, max_length=64, description="Asset id of a melody or an uploaded MIDI.")
    n: int = Field(default=4, ge=1)
    similarity: float = Field(default=0.7, ge=0.0, le=1.0, description="1 = the same melody, 0 = unrelated.")
    track: int | None = Field(default=None, ge=0, description="Track of an uploaded MIDI (default: busiest).")

    def check_limits(self, s: Settings) -> None:
        self.check_common(s)
        check_n(self.n, s)


class ContinueRequest(_Common):
    """More bars after a melody, in its key and style (the long-melody model, conditioned on its last bars)."""

    source: str = Field(min_length=1, max_length=64, description="Asset id of a melody or an uploaded MIDI.")
    bars: int = Field(default=8, ge=2, description="New bars to write (even).")
    n: int = Field(default=4, ge=1, description="How many continuations.")
    track: int | None = Field(default=None, ge=0, description="Track of an uploaded MIDI (default: busiest).")
    accompaniment: bool = Field(default=False, description="Add a backing (chords picked to fit, and a bass line).")

    def check_limits(self, s: Settings) -> None:
        self.check_common(s)
        check_n(self.n, s)
        check_bars(self.bars, s)


HARMONY_VOICES = ("soprano", "alto", "tenor", "bass")


class HarmonizeRequest(_Common):
    """Voices under (or around) a melody, in the style of Bach's chorales (Coconet)."""

    source: str = Field(min_length=1, max_length=64, description="Asset id of a melody or an uploaded MIDI.")
    voices: list[Literal["soprano", "alto", "tenor", "bass"]] = Field(
        default_factory=lambda: ["alto", "tenor", "bass"],
        description="The voices to write; the melody is the highest voice not listed (soprano by default).",
    )
    n: int = Field(default=1, ge=1, description="How many harmonizations.")
    track: int | None = Field(default=None, ge=0, description="Track of an uploaded MIDI (default: busiest).")
    temperature: float = Field(default=0.75, ge=0.0, le=2.0, description="0 = the most likely chorale.")

    def check_limits(self, s: Settings) -> None:
        self.check_common(s)
        check_n(self.n, s, "harmonizations")
        if not self.voices:
            raise LimitError("voices", "name at least one voice to write: alto, tenor, bass (or soprano)")
        if len(set(self.voices)) != len(self.voices):
            raise LimitError("voices", "each voice once")
        if len(self.voices) == 4:
            raise LimitError("voices", "one voice must be the melody: name at most three of the four")


Operation = Literal["sample", "interpolate", "vary", "continue", "harmonize"]
REQUESTS: dict[str, type[_Common]] = {
    "sample": SampleRequest,
    "interpolate": InterpolateRequest,
    "vary": VaryRequest,
    "continue": ContinueRequest,
    "harmonize": HarmonizeRequest,
}


class SourceMelody(BaseModel):
    """What a job row keeps of a source melody, so that workers need no access to the source file."""

    origin: str
    bars: int
    tempo: float | None = None
    program: int | None = None
    track: int | None = None
    dropped: dict[str, int] = Field(default_factory=dict)
    notes: list[list[int]]


class _Resolved(BaseModel):
    """Values fixed at submit time, so the 202 answer says exactly what will be made."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    seed: int = Field(ge=0, le=2**32 - 1)
    tempo: float
    instrument: int = Field(ge=0, le=127)
    instrument_name: str


class SampleParams(_Resolved, SampleRequest):
    op: Literal["sample"] = "sample"


class InterpolateParams(_Resolved, InterpolateRequest):
    op: Literal["interpolate"] = "interpolate"
    start_melody: SourceMelody = Field(alias="_start")
    end_melody: SourceMelody = Field(alias="_end")


class VaryParams(_Resolved, VaryRequest):
    op: Literal["vary"] = "vary"
    source_melody: SourceMelody = Field(alias="_source")


class ContinueParams(_Resolved, ContinueRequest):
    op: Literal["continue"] = "continue"
    source_melody: SourceMelody = Field(alias="_source")


class HarmonizeParams(_Resolved, HarmonizeRequest):
    op: Literal["harmonize"] = "harmonize"
    source_melody: SourceMelody = Field(alias="_source")


AnyParams = SampleParams | InterpolateParams | VaryParams | ContinueParams | HarmonizeParams
# A music job's params: one model per operation, told apart by `op`. Sources are stored under "_"-keys,
# which the jobs route keeps out of answers.
MusicParams = Annotated[AnyParams, Field(discriminator="op")]
PARAMS = TypeAdapter(MusicParams)


def job_params(op: str, req: _Common, **resolved: Any) -> AnyParams:
    """The typed params of a music job: the operation, the request, and every value resolved at submit
    time (seed, tempo, instrument program and name, key spelled out)."""
    from .render import instrument_program

    params = {"op": op, **req.model_dump(), **resolved}
    source = params.get("_start") or params.get("_source") or {}
    params["tempo"] = float(params.get("tempo") or source.get("tempo") or 120.0)
    if params.get("instrument") is not None:
        program = instrument_program(params["instrument"])[0]
    else:
        program = int(source.get("program") or 0)
    params["instrument"] = program
    params["instrument_name"] = instrument_program(program)[1]
    if params.get("key"):
        params["key"] = parse_key(params["key"]).name
    return PARAMS.validate_python(params)


def dump_params(params: BaseModel) -> dict[str, Any]:
    """A music job's params as its row stores them (sources under their "_" keys)."""
    return params.model_dump(by_alias=True)
