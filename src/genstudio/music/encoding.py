"""Magenta's one-hot melody encoding (as in MusicVAE's ``OneHotMelodyConverter``) and note-list conversions.

A melody is a list of `Note(pitch, start, end)` on a 16th-note grid (4 steps per quarter). It is
encoded as one token per step: 0 = no event (hold the current note or rest), 1 = note-off,
2 + (pitch - min_pitch) = note-on. MusicVAE's default pitch range is the piano's, MIDI 21-108
inclusive, so 2 + 88 = 90 classes (melody_rnn's default, 48-83, gives 38).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pretty_midi

NO_EVENT = 0
NOTE_OFF = 1
FIRST_NOTE_ON = 2
STEPS_PER_QUARTER = 4


@dataclass(frozen=True)
class Note:
    """A note on the step grid: MIDI `pitch` sounding from step `start` (inclusive) to `end` (exclusive)."""

    pitch: int
    start: int
    end: int


def _onset_order(n: Note) -> tuple[int, int, int]:
    return n.start, n.end, n.pitch


@dataclass(frozen=True)
class MelodyEncoding:
    """Token <-> note mapping for pitches `min_pitch`..`max_pitch` inclusive."""

    min_pitch: int = 21
    max_pitch: int = 108

    @property
    def num_classes(self) -> int:
        return FIRST_NOTE_ON + self.max_pitch - self.min_pitch + 1

    def note_on(self, pitch: int) -> int:
        if not self.min_pitch <= pitch <= self.max_pitch:
            raise ValueError(f"pitch {pitch} is outside {self.min_pitch}-{self.max_pitch}")
        return FIRST_NOTE_ON + pitch - self.min_pitch

    def encode(self, notes: Iterable[Note], num_steps: int) -> np.ndarray:
        """Monophonic notes -> int64 tokens [num_steps].

        Notes are clipped to the window [0, num_steps); a note-off is written only where a note ends
        before the next one starts (Magenta's convention), never at the window's end. Overlapping
        notes or pitches out of range raise ValueError: pass polyphony through `monophonic` first.
        """
        tokens = np.full(num_steps, NO_EVENT, dtype=np.int64)
        prev_end = -1
        for n in sorted(notes, key=_onset_order):
            start, end = max(n.start, 0), min(n.end, num_steps)
            if end <= start:
                continue
            if start < prev_end:
                raise ValueError(f"notes overlap at step {start}: melody is not monophonic")
            if prev_end > 0 and prev_end < start and tokens[prev_end] == NO_EVENT:
                tokens[prev_end] = NOTE_OFF
            tokens[start] = self.note_on(n.pitch)
            prev_end = end
        if 0 < prev_end < num_steps:
            tokens[prev_end] = NOTE_OFF
        return tokens

    def decode(self, tokens: Sequence[int] | np.ndarray) -> list[Note]:
        """Tokens [T] -> notes; a note lasts until the next note-on or note-off, or the end of the window."""
        notes: list[Note] = []
        pitch, start = -1, 0
        for step, tok in enumerate(int(t) for t in tokens):
            if tok == NO_EVENT:
                continue
            if pitch >= 0:
                notes.append(Note(pitch, start, step))
                pitch = -1
            if tok >= FIRST_NOTE_ON:
                if tok >= self.num_classes:
                    raise ValueError(f"token {tok} is outside the {self.num_classes} classes")
                pitch, start = tok - FIRST_NOTE_ON + self.min_pitch, step
            elif tok != NOTE_OFF:
                raise ValueError(f"token {tok} is negative")
        if pitch >= 0:
            notes.append(Note(pitch, start, len(tokens)))
        return notes

    def transpose(self, tokens: np.ndarray, semitones: int) -> np.ndarray:
        """Shift the note-on tokens of [..., T] by `semitones`; raises ValueError if a pitch leaves the range."""
        out = np.array(tokens, dtype=np.int64, copy=True)
        on = out >= FIRST_NOTE_ON
        out[on] += semitones
        if on.any() and (out[on].min() < FIRST_NOTE_ON or out[on].max() >= self.num_classes):
            raise ValueError(f"transposing by {semitones} leaves the pitch range")
        return out


def quantize(notes: Iterable[tuple[float, float, int]], steps_per_quarter: int = STEPS_PER_QUARTER) -> list[Note]:
    """(start, end, pitch) in quarter notes -> notes on the step grid.

    Onsets and ends round to the nearest step; a note never shrinks below one step. Triplets collide on
    the 16th grid: two onsets rounding to the same step are resolved by `monophonic`.
    """
    out = []
    for start, end, pitch in notes:
        s = int(round(start * steps_per_quarter))
        e = max(int(round(end * steps_per_quarter)), s + 1)
        out.append(Note(int(pitch), s, e))
    return out


def monophonic(notes: Iterable[Note]) -> list[Note]:
    """The melody line of possibly polyphonic notes, as Magenta's melody extraction takes it: at each
    onset the highest pitch wins, and a later onset cuts off the note sounding before it."""
    by_onset: dict[int, Note] = {}
    for n in notes:
        if n.start not in by_onset or n.pitch > by_onset[n.start].pitch:
            by_onset[n.start] = n
    ordered = [by_onset[s] for s in sorted(by_onset)]
    out = []
    for i, n in enumerate(ordered):
        end = n.end if i + 1 == len(ordered) else min(n.end, ordered[i + 1].start)
        out.append(Note(n.pitch, n.start, end))
    return out


def notes_to_midi(
    notes: Iterable[Note],
    *,
    qpm: float = 120.0,
    program: int = 0,
    velocity: int = 90,
    steps_per_quarter: int = STEPS_PER_QUARTER,
) -> pretty_midi.PrettyMIDI:
    """Notes -> a one-instrument PrettyMIDI at a fixed tempo (General MIDI `program`, 0-127)."""
    import pretty_midi

    if not 0 <= program <= 127:
        raise ValueError(f"program {program} is outside 0-127")
    if not qpm > 0:
        raise ValueError(f"tempo {qpm} must be positive")
    pm = pretty_midi.PrettyMIDI(initial_tempo=qpm)
    inst = pretty_midi.Instrument(program=program)
    step_s = 60.0 / qpm / steps_per_quarter
    for n in sorted(notes, key=_onset_order):
        inst.notes.append(
            pretty_midi.Note(velocity=velocity, pitch=n.pitch, start=n.start * step_s, end=n.end * step_s)
        )
    pm.instruments.append(inst)
    return pm


def midi_to_notes(
    pm: pretty_midi.PrettyMIDI, instrument: int | None = None, steps_per_quarter: int = STEPS_PER_QUARTER
) -> list[Note]:
    """A PrettyMIDI's notes on the step grid (drums skipped), counted in beats so any tempo map works.

    `instrument` picks one track by index; None takes every non-drum track. The result may be
    polyphonic: pass it to `monophonic` for the melody line.
    """
    insts = [i for i in pm.instruments if not i.is_drum] if instrument is None else [pm.instruments[instrument]]
    res = float(pm.resolution)
    raw = [
        (pm.time_to_tick(n.start) / res, pm.time_to_tick(n.end) / res, n.pitch) for inst in insts for n in inst.notes
    ]
    return quantize(raw, steps_per_quarter)
