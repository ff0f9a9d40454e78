"""A melody in the three formats users take away: MIDI (tempo, instrument, key, and the generation
parameters in a meta event), MusicXML (sheet music, via music21) and WAV (FluidSynth with a General
MIDI soundfont); and the other way: the melody line of an uploaded MIDI file."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .encoding import STEPS_PER_QUARTER, Note, midi_to_notes, monophonic, notes_to_midi
from .theory import Key

META_PREFIX = "genstudio:"
COPYRIGHT = "AI-generated with genstudio (MusicVAE melody model)"
SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)


class RenderUnavailable(RuntimeError):
    """A tool a format needs (FluidSynth, a soundfont) is not installed; the message says how to get it."""


def instrument_program(value: int | str) -> tuple[int, str]:
    """A General MIDI program from a number (0-127) or a name ('violin', 'Acoustic Grand Piano')."""
    import pretty_midi

    names = pretty_midi.constants.INSTRUMENT_MAP
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        program = int(value)
        if not 0 <= program <= 127:
            raise ValueError(f"instrument program {program} is outside 0-127")
        return program, names[program]
    text = str(value).strip().lower()
    exact = [i for i, n in enumerate(names) if n.lower() == text]
    if exact:
        return exact[0], names[exact[0]]
    partial = [i for i, n in enumerate(names) if text and text in n.lower()]
    if len(partial) >= 1 and len({names[i] for i in partial}) == 1 or (partial and len(text) >= 3):
        return partial[0], names[partial[0]]
    raise ValueError(f"unknown instrument {value!r}: use a General MIDI program 0-127 or a name like 'violin'")


@dataclass
class Part:
    """A voice or track beside the melody (a harmonization's alto, an accompaniment's bass line)."""

    name: str
    notes: list[Note]
    program: int = 0
    velocity: int = 80

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "program": self.program,
            "velocity": self.velocity,
            "notes": [[n.pitch, n.start, n.end] for n in self.notes],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Part:
        return cls(
            str(d.get("name") or "part")[:64],
            [Note(int(a), int(b), int(c)) for a, b, c in d.get("notes") or []],
            int(d.get("program") or 0),
            int(d.get("velocity") or 80),
        )


@dataclass
class Melody:
    """A finished piece: notes on the 16th grid plus how to play it; optionally other parts (voices of a
    harmonization, an accompaniment) and chord symbols as (step, symbol)."""

    notes: list[Note]
    bars: int
    tempo: float = 120.0
    program: int = 0
    key: Key | None = None
    params: dict[str, Any] = field(default_factory=dict)
    parts: list[Part] = field(default_factory=list)
    chords: list[tuple[int, str]] = field(default_factory=list)
    name: str = "melody"

    @property
    def steps(self) -> int:
        return self.bars * 4 * STEPS_PER_QUARTER

    def notes_json(self) -> list[list[int]]:
        return [[n.pitch, n.start, n.end] for n in self.notes]

    def extra_json(self) -> dict[str, Any]:
        """What a result's params carry besides the melody's notes, so every format can be rebuilt."""
        out: dict[str, Any] = {}
        if self.parts:
            out["parts"] = [p.to_json() for p in self.parts]
        if self.chords:
            out["chords_at"] = [[int(t), c] for t, c in self.chords]
        if self.name != "melody":
            out["part_name"] = self.name
        return out

    @staticmethod
    def extra_from(params: dict[str, Any]) -> dict[str, Any]:
        """The inverse of `extra_json` (tolerant of old results without these keys)."""
        parts = [Part.from_json(d) for d in params.get("parts") or [] if isinstance(d, dict)]
        chords = [(int(t), str(c)[:16]) for t, c in params.get("chords_at") or []]
        return {"parts": parts, "chords": chords, "name": str(params.get("part_name") or "melody")[:64]}


def midi_bytes(m: Melody) -> bytes:
    """Standard MIDI file, type 1: tempo, 4/4, key signature, instrument; the parameters as a text meta
    event (`genstudio:{json}`) and a copyright event that says it is AI-generated."""
    import mido
    import pretty_midi

    pm = notes_to_midi(m.notes, qpm=m.tempo, program=m.program)
    pm.instruments[0].name = (
        pretty_midi.program_to_instrument_name(m.program) if m.name == "melody" else m.name.capitalize()
    )
    step_s = 60.0 / m.tempo / STEPS_PER_QUARTER
    for part in m.parts:
        inst = pretty_midi.Instrument(program=part.program, name=part.name.capitalize())
        for n in sorted(part.notes, key=lambda n: (n.start, n.pitch)):
            inst.notes.append(pretty_midi.Note(part.velocity, n.pitch, n.start * step_s, n.end * step_s))
        pm.instruments.append(inst)
    for t, symbol in m.chords:
        pm.lyrics.append(pretty_midi.Lyric(symbol, t * step_s))  # replaced by marker events below
    pm.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
    if m.key is not None:
        pm.key_signature_changes.append(
            pretty_midi.KeySignature(m.key.tonic + (12 if m.key.mode == "minor" else 0), 0.0)
        )
    raw = io.BytesIO()
    pm.write(raw)
    mid = mido.MidiFile(file=io.BytesIO(raw.getvalue()))
    for track in mid.tracks:  # chord symbols as marker events (what DAWs show on the timeline)
        for i, msg in enumerate(track):
            if msg.type == "lyrics":
                track[i] = mido.MetaMessage("marker", text=msg.text, time=msg.time)
    meta = json.dumps(m.params, separators=(",", ":"), sort_keys=True, ensure_ascii=True)
    mid.tracks[0].insert(0, mido.MetaMessage("text", text=META_PREFIX + meta, time=0))
    mid.tracks[0].insert(0, mido.MetaMessage("copyright", text=COPYRIGHT, time=0))
    out = io.BytesIO()
    mid.save(file=out)
    return out.getvalue()


def read_midi_params(data: bytes) -> dict[str, Any] | None:
    """The generation parameters a genstudio MIDI file carries, or None."""
    import mido

    try:
        mid = mido.MidiFile(file=io.BytesIO(data))
    except Exception:  # noqa: BLE001 -- mido raises many types for broken files
        return None
    for track in mid.tracks:
        for msg in track:
            if msg.type == "text" and msg.text.startswith(META_PREFIX):
                try:
                    return json.loads(msg.text[len(META_PREFIX) :])
                except ValueError:
                    return None
    return None


def _m21_pitch(midi: int, k: Key | None):  # noqa: ANN202 -- a music21 Pitch
    """A MIDI number spelled in the key: flats in flat keys (A-flat, not G-sharp, under four flats)."""
    from music21 import pitch

    p = pitch.Pitch(midi=midi)
    flats = k is not None and k.fifths < 0
    if p.accidental is not None and p.accidental.alter != 0:
        if flats and p.accidental.alter > 0:
            p = p.getEnharmonic()
        elif not flats and p.accidental.alter < 0:
            p = p.getEnharmonic()
    return p


def _m21_part(notes: Sequence[Note], steps: int, program: int, k: Key | None, name: str, clef: str | None = None):  # noqa: ANN202
    from music21 import chord, instrument, key, meter, note, stream
    from music21 import clef as m21clef

    part = stream.Part()
    part.partName = name
    try:
        part.insert(0, instrument.instrumentFromMidiProgram(program))
    except Exception:  # noqa: BLE001 -- music21 lacks a class for a few programs
        part.insert(0, instrument.Instrument())
    if clef == "bass":
        part.insert(0, m21clef.BassClef())
    elif clef == "treble8vb":
        part.insert(0, m21clef.Treble8vbClef())
    part.insert(0, meter.TimeSignature("4/4"))
    if k is not None:
        part.insert(0, key.Key(k.name.split()[0].replace("b", "-"), k.mode))
    q = float(STEPS_PER_QUARTER)
    cursor = 0
    by_start: dict[int, list[Note]] = {}
    for n in notes:
        by_start.setdefault(n.start, []).append(n)
    for start in sorted(by_start):
        group = by_start[start]
        end = min(n.end for n in group)
        if start < cursor:  # overlapping onsets in one staff: kept as written, without a rest
            end = max(end, start + 1)
        elif start > cursor:
            part.insert(cursor / q, note.Rest(quarterLength=(start - cursor) / q))
        length = (end - start) / q
        if len(group) == 1:
            el = note.Note(_m21_pitch(group[0].pitch, k), quarterLength=length)
        else:
            el = chord.Chord([_m21_pitch(n.pitch, k) for n in group], quarterLength=length)
        part.insert(start / q, el)
        cursor = max(cursor, end)
    if cursor < steps:
        part.insert(cursor / q, note.Rest(quarterLength=(steps - cursor) / q))
    return part


def _clef_for(notes: Sequence[Note]) -> str | None:
    if not notes:
        return None
    mid = sorted(n.pitch for n in notes)[len(notes) // 2]
    return "bass" if mid < 55 else ("treble8vb" if mid < 62 else None)


def musicxml_bytes(m: Melody, title: str = "genstudio melody") -> bytes:
    """MusicXML (partwise) in 4/4 with the key signature (notes spelled in it), tempo and instrument:
    the melody's staff first (with chord symbols above it), then one staff per other part."""
    from music21 import harmony, metadata, stream, tempo
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    melody = _m21_part(m.notes, m.steps, m.program, m.key, m.name.capitalize(), _clef_for(m.notes) if m.parts else None)
    melody.insert(0, tempo.MetronomeMark(number=round(m.tempo)))
    q = float(STEPS_PER_QUARTER)
    for t, symbol in m.chords:
        try:
            cs = harmony.ChordSymbol(symbol[0] + "-" + symbol[2:] if symbol[1:2] == "b" else symbol)
        except Exception:  # noqa: BLE001 -- music21 cannot read every spelling; the symbol is then text
            continue
        cs.writeAsChord = False
        melody.insert(t / q, cs)
    score = stream.Score()
    score.insert(0, metadata.Metadata(title=title, composer="genstudio (AI-generated)"))
    score.insert(0, melody)
    for part in m.parts:
        score.insert(
            0, _m21_part(part.notes, m.steps, part.program, m.key, part.name.capitalize(), _clef_for(part.notes))
        )
    score.makeNotation(inPlace=True)
    return GeneralObjectExporter(score).parse()


def soundfont() -> Path | None:
    """GENSTUDIO_SOUNDFONT when set (it must exist), else the first General MIDI soundfont installed."""
    env = os.environ.get("GENSTUDIO_SOUNDFONT")
    if env:
        if not Path(env).is_file():
            raise RenderUnavailable(f"GENSTUDIO_SOUNDFONT={env} is not a file")
        return Path(env)
    for p in SOUNDFONTS:
        if Path(p).is_file():
            return Path(p)
    return None


class MidiTooLarge(ValueError):
    """A MIDI file over a cap; the message names the setting."""


@dataclass
class MidiSize:
    notes: int  # note-on events (velocity > 0), all tracks
    seconds: float  # time of the last event of the longest track, through the tempo map
    stopped: bool = False  # the count stopped early at the note cap


_CHANNEL_DATA = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}


def _varlen(data: bytes, i: int, end: int) -> tuple[int, int]:
    """A MIDI variable-length quantity starting at `i` (7 bits a byte, high bit = more): (value, next index)."""
    value = 0
    while i < end:
        byte = data[i]
        i += 1
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            break
    return value, i


def midi_size(data: bytes, *, stop_at_notes: int | None = None) -> MidiSize:
    """Count note-ons and the length in seconds by one pass over the track chunks' bytes, without building
    any message objects (what pretty_midi or mido would hold for each of 400 k notes). ValueError when
    the file is not MIDI; the count stops once `stop_at_notes` is passed."""
    if len(data) < 14 or data[:4] != b"MThd":
        raise ValueError("not a MIDI file (no MThd header)")
    hlen = int.from_bytes(data[4:8], "big")
    division = int.from_bytes(data[12:14], "big")
    if division == 0:
        raise ValueError("MIDI header with a division of 0")
    pos, notes, tempos, ends = 8 + hlen, 0, [], []
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos + 4 : pos + 8], "big")
        chunk, body_end = data[pos : pos + 4], min(pos + 8 + length, len(data))
        i, pos = pos + 8, pos + 8 + length
        if chunk != b"MTrk":
            continue
        tick, running = 0, 0
        while i < body_end:
            delta, i = _varlen(data, i, body_end)  # delta time
            tick += delta
            if i >= body_end:
                break
            status = data[i]
            if status == 0xFF:  # meta event: type, length, data
                kind, i = data[i + 1] if i + 1 < body_end else 0, i + 2
                mlen, i = _varlen(data, i, body_end)
                if kind == 0x51 and mlen == 3:
                    tempos.append((tick, int.from_bytes(data[i : i + 3], "big")))
                i += mlen
                if kind == 0x2F:
                    break
                continue
            if status in (0xF0, 0xF7):  # sysex: length, data
                slen, i = _varlen(data, i + 1, body_end)
                i += slen
                continue
            if status & 0x80:
                running, i = status, i + 1
            elif not running:
                raise ValueError("MIDI track data without a status byte")
            high = running & 0xF0
            size = _CHANNEL_DATA.get(high, 0)
            if high == 0x90 and i + 1 < body_end and data[i + 1] > 0:
                notes += 1
                if stop_at_notes is not None and notes > stop_at_notes:
                    return MidiSize(notes, 0.0, stopped=True)
            i += size
        ends.append(tick)
    last = max(ends, default=0)
    if division & 0x8000:  # SMPTE: frames per second and ticks per frame
        fps = 256 - (division >> 8)
        return MidiSize(notes, last / max(fps * (division & 0xFF), 1))
    seconds, at, tempo = 0.0, 0, 500_000
    for t, new_tempo in sorted(tempos):
        if t >= last:
            break
        seconds += (t - at) * tempo / 1e6 / division
        at, tempo = t, new_tempo
    return MidiSize(notes, seconds + (last - at) * tempo / 1e6 / division)


def check_midi_size(data: bytes, *, max_notes: int, max_seconds: float) -> MidiSize:
    """MidiTooLarge naming GENSTUDIO_MAX_MIDI_NOTES or GENSTUDIO_MAX_MIDI_SECONDS for a file over either."""
    size = midi_size(data, stop_at_notes=max_notes)
    if size.notes > max_notes:
        raise MidiTooLarge(f"MIDI file has more than {max_notes} notes (GENSTUDIO_MAX_MIDI_NOTES)")
    if size.seconds > max_seconds:
        raise MidiTooLarge(
            f"MIDI file lasts {size.seconds:.0f} s, over the limit of {max_seconds:g} s (GENSTUDIO_MAX_MIDI_SECONDS)"
        )
    return size


MAX_AUDIO_SECONDS = 600.0  # the default of GENSTUDIO_MAX_AUDIO_SECONDS


def wav_bytes(
    midi: bytes,
    *,
    sample_rate: int = 44100,
    gain: float = 1.0,
    timeout: float = 120.0,
    max_seconds: float = MAX_AUDIO_SECONDS,
    tmp_dir: Path | None = None,
) -> bytes:
    """Render MIDI to 16-bit stereo WAV with FluidSynth and a General MIDI soundfont.

    ValueError (before anything is rendered) for a MIDI longer than `max_seconds`
    (GENSTUDIO_MAX_AUDIO_SECONDS): a few bytes can ask for hours of audio."""
    seconds = midi_size(midi).seconds
    if seconds > max_seconds:
        raise MidiTooLarge(
            f"the WAV would last {seconds:.0f} s, over the limit of {max_seconds:g} s (GENSTUDIO_MAX_AUDIO_SECONDS)"
        )
    exe = shutil.which("fluidsynth")
    sf2 = soundfont()
    if exe is None or sf2 is None:
        raise RenderUnavailable(
            "audio rendering needs FluidSynth and a General MIDI soundfont: "
            "apt-get install fluidsynth fluid-soundfont-gm (or set GENSTUDIO_SOUNDFONT)"
        )
    # In the data dir's tmp folder when given (swept at start, as a crash mid-render would leave it).
    with tempfile.TemporaryDirectory(prefix="genstudio-scratch-wav-", dir=tmp_dir) as tmp:
        src, dst = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        src.write_bytes(midi)
        cmd = [
            exe,
            "-ni",
            "-q",
            "-g",
            str(gain),
            "-r",
            str(sample_rate),
            "-T",
            "wav",
            "-F",
            str(dst),
            str(sf2),
            str(src),
        ]
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        if proc.returncode != 0 or not dst.is_file() or dst.stat().st_size <= 44:
            raise RuntimeError(f"fluidsynth failed: {proc.stderr.decode(errors='replace')[-300:]}")
        return dst.read_bytes()


# Uploaded MIDI -> melody line


@dataclass
class TrackInfo:
    index: int
    name: str
    program: int
    is_drum: bool
    notes: int
    polyphonic: bool


@dataclass
class Extracted:
    notes: list[Note]
    bars: int
    track: int | None
    tempo: float
    dropped: dict[str, int]
    tracks: list[TrackInfo]

    def summary(self) -> str:
        parts = [f"{v} {k.replace('_', ' ')}" for k, v in self.dropped.items() if v]
        return "kept everything" if not parts else "dropped " + ", ".join(parts)


def load_midi(data: bytes) -> Any:
    import pretty_midi

    try:
        return pretty_midi.PrettyMIDI(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 -- mido/pretty_midi raise many types
        why = "it holds no events" if "empty sequence" in str(exc) else "its chunks or events are malformed"
        raise ValueError(f"not a readable MIDI file ({why})") from None


def midi_tracks(pm: Any) -> list[TrackInfo]:
    out = []
    for i, inst in enumerate(pm.instruments):
        onsets = sorted(n.start for n in inst.notes)
        poly = any(b - a < 1e-3 for a, b in zip(onsets, onsets[1:], strict=False))
        out.append(
            TrackInfo(i, str(inst.name or ""), int(inst.program), bool(inst.is_drum), len(inst.notes), bool(poly))
        )
    return out


def extract_melody(
    data: bytes, *, track: int | None = None, max_bars: int = 64, min_pitch: int = 21, max_pitch: int = 108
) -> Extracted:
    """The melody line of a MIDI file: one track (default: the non-drum track with most notes), reduced
    to its top line (highest onset wins, a later onset cuts the sounding note), quantised to 16ths,
    starting at the first bar that holds a note, at most `max_bars` bars of 4/4. Says what it dropped."""
    pm = load_midi(data)
    tracks = midi_tracks(pm)
    if not tracks:
        raise ValueError("the MIDI file has no tracks with notes")
    if track is None:
        candidates = [t for t in tracks if not t.is_drum and t.notes]
        if not candidates:
            raise ValueError("the MIDI file has no melodic (non-drum) notes")
        track = max(candidates, key=lambda t: t.notes).index
    if not 0 <= track < len(tracks):
        raise ValueError(f"track {track} does not exist: the file has tracks 0-{len(tracks) - 1}")
    if tracks[track].is_drum:
        raise ValueError(f"track {track} is a drum track: pick a melodic one")
    raw = midi_to_notes(pm, instrument=track)
    if not raw:
        raise ValueError(f"track {track} has no notes")
    dropped = {
        "other_tracks_notes": sum(t.notes for t in tracks if t.index != track),
        "notes_out_of_range": 0,
        "chord_notes": 0,
        "notes_too_short_after_quantising": int(tracks[track].notes - len(raw)),
        "notes_beyond_the_bar_limit": 0,
    }
    in_range = [n for n in raw if min_pitch <= n.pitch <= max_pitch]
    dropped["notes_out_of_range"] = len(raw) - len(in_range)
    mono = monophonic(in_range)
    dropped["chord_notes"] = len(in_range) - len(mono)
    if not mono:
        raise ValueError("no melody left after reducing the track to its top line")
    steps_per_bar = 4 * STEPS_PER_QUARTER
    first_bar = mono[0].start // steps_per_bar
    offset = first_bar * steps_per_bar
    limit = max_bars * steps_per_bar
    kept = [
        Note(int(n.pitch), int(n.start - offset), int(min(n.end - offset, limit)))
        for n in mono
        if n.start - offset < limit
    ]
    dropped["notes_beyond_the_bar_limit"] = len(mono) - len(kept)
    last = max(n.end for n in kept)
    bars = max(2, -(-last // steps_per_bar))
    bars += bars % 2  # the model works on 2-bar windows
    tempo = float(pm.get_tempo_changes()[1][0]) if len(pm.get_tempo_changes()[1]) else 120.0
    return Extracted(kept, min(bars, max_bars), track, tempo, dropped, tracks)


def windows(notes: Sequence[Note], bars: int, window_bars: int = 2) -> list[list[Note]]:
    """Split a melody into consecutive windows of `window_bars` bars, each re-based to step 0."""
    size = window_bars * 4 * STEPS_PER_QUARTER
    out: list[list[Note]] = []
    for w in range(0, bars * 4 * STEPS_PER_QUARTER, size):
        out.append(
            [
                Note(n.pitch, max(n.start, w) - w, min(n.end, w + size) - w)
                for n in notes
                if n.start < w + size and n.end > w
            ]
        )
    return out


def inspect(data: bytes, fmt: str, mime: str | None) -> dict[str, Any] | None:
    """The music studio's part of a verify report: what a MIDI file declares about itself (a copyright
    text, genstudio's generation parameters). Anyone can write these: they are reported as unsigned
    claims; the signed signal is the manifest (provenance.midi_signature)."""
    if fmt != "midi":
        return None
    import mido

    report: dict[str, Any] = {"declared_ai_generated": False, "copyright": None, "generation": None}
    try:
        mid = mido.MidiFile(file=io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 -- mido raises many types for broken files
        return {"midi": report | {"error": f"not a readable MIDI file: {exc or type(exc).__name__}"}}
    for track in mid.tracks:
        for msg in track:
            if msg.type == "copyright" and report["copyright"] is None:
                report["copyright"] = msg.text
                report["declared_ai_generated"] = "ai-generated" in msg.text.lower()
            elif msg.type == "text" and msg.text.startswith(META_PREFIX) and report["generation"] is None:
                try:
                    params = json.loads(msg.text[len(META_PREFIX) :])
                except ValueError:
                    continue
                if isinstance(params, dict):
                    report["generation"] = {k: v for k, v in params.items() if k != "notes"}
    return {"midi": report}
