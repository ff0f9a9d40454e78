"""Chords and a backing for a melody: rule-based (no model), documented as such in docs/music.md.

- `pick_chords`: one chord per bar from the key's diatonic triads (plus the major dominant in minor),
  the one whose tones cover most of the bar's beat-weighted melody, with a small preference for the
  primary chords (I, IV, V) and the tonic in the last bar.
- `accompaniment`: a chord part (close-position triads around middle C, two per bar on beats 1 and 3,
  each inversion the nearest to the previous one) and a bass line (the root on beat 1, the fifth on
  beat 3, in the octave below the chords).
"""

from __future__ import annotations

from collections.abc import Sequence

from .encoding import Note
from .render import Part
from .theory import Chord, Key, parse_chord

STEPS_PER_BAR = 16
NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
NAMES_SHARP = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
CHORD_PROGRAM = 0  # Acoustic Grand Piano
BASS_PROGRAM = 32  # Acoustic Bass


def _name(pc: int, key: Key) -> str:
    return (NAMES if key.fifths < 0 else NAMES_SHARP)[pc % 12]


def diatonic_chords(key: Key) -> list[tuple[Chord, float]]:
    """(chord, prior bonus) for the key's triads; primary chords get a bonus, the tonic the largest."""
    if key.mode == "major":
        degrees = [(0, "", 0.15), (2, "m", 0.0), (4, "m", -0.05), (5, "", 0.1), (7, "", 0.1), (9, "m", 0.03)]
    else:
        degrees = [(0, "m", 0.15), (3, "", 0.03), (5, "m", 0.1), (7, "", 0.1), (8, "", 0.03), (10, "", 0.0)]
    return [(parse_chord(_name(key.tonic + d, key) + q), bonus) for d, q, bonus in degrees]


def _coverage(notes: Sequence[Note], chord: Chord, lo: int, hi: int) -> float:
    good = total = 0.0
    for n in notes:
        for step in range(max(n.start, lo), min(n.end, hi)):
            w = 2.0 if step % 4 == 0 else 1.0
            total += w
            good += w if n.pitch % 12 in chord.tones else 0.0
    return good / total if total else 0.0


def pick_chords(notes: Sequence[Note], bars: int, key: Key) -> list[Chord]:
    """One chord per bar that fits the melody (see the module's doc)."""
    options = diatonic_chords(key)
    out: list[Chord] = []
    for b in range(bars):
        lo, hi = b * STEPS_PER_BAR, (b + 1) * STEPS_PER_BAR
        best, best_score = options[0][0], -1.0
        for chord, bonus in options:
            score = _coverage(notes, chord, lo, hi) + bonus
            if b == bars - 1 and chord is options[0][0]:
                score += 0.15
            if out and chord.symbol == out[-1].symbol:
                score -= 0.02  # a change of harmony is a little more interesting, all else equal
            if score > best_score:
                best, best_score = chord, score
        out.append(best)
    return out


def _voicing(chord: Chord, previous: list[int] | None, low: int = 55, high: int = 72) -> list[int]:
    """Three chord tones within [low, high]: the close position nearest to `previous` (root position
    around middle C first)."""
    tones = sorted({(chord.root + i) % 12 for i in (0, 3, 4, 7, 10, 11, 2) if (chord.root + i) % 12 in chord.tones})
    triad = [chord.root % 12] + [t for t in tones if t != chord.root % 12][:2]
    candidates = []
    for base in range(low, high + 1):
        if base % 12 not in triad:
            continue
        stack = [base]
        for t in triad:
            if t == base % 12:
                continue
            p = base + ((t - base) % 12)
            stack.append(p)
        stack.sort()
        if stack[-1] <= high:
            candidates.append(stack)
    if not candidates:
        return [60 + t for t in triad]
    if previous is None:
        return min(candidates, key=lambda c: (abs(c[0] - 60), c[0] % 12 != chord.root % 12))
    return min(candidates, key=lambda c: sum(abs(a - b) for a, b in zip(c, previous, strict=False)))


def accompaniment(chords: Sequence[Chord], bars: int, key: Key, melody: Sequence[Note] = ()) -> list[Part]:
    """Chord part + bass line for `bars` bars; the progression repeats if shorter than the piece."""
    if not chords:
        return []
    low_melody = min((n.pitch for n in melody), default=72)
    high = min(72, max(57, low_melody - 2))  # the chords stay below the melody where they can
    pads: list[Note] = []
    bass: list[Note] = []
    previous: list[int] | None = None
    for b in range(bars):
        chord = chords[b % len(chords)]
        voicing = _voicing(chord, previous, high - 17, high)
        previous = voicing
        start = b * STEPS_PER_BAR
        for half in (0, 8):
            pads.extend(Note(p, start + half, start + half + 8) for p in voicing)
        root = 36 + (chord.root - 36) % 12  # C2..B2
        fifth = root + 7 if (chord.root + 7) % 12 in chord.tones else root
        bass.append(Note(root, start, start + 8))
        bass.append(Note(fifth, start + 8, start + 16))
    return [Part("chords", pads, CHORD_PROGRAM, 62), Part("bass", bass, BASS_PROGRAM, 84)]


def chord_marks(chords: Sequence[Chord], bars: int) -> list[tuple[int, str]]:
    """(step, symbol) at each bar where the chord changes (and at bar 1)."""
    out: list[tuple[int, str]] = []
    for b in range(bars):
        symbol = chords[b % len(chords)].symbol
        if not out or out[-1][1] != symbol:
            out.append((b * STEPS_PER_BAR, symbol))
    return out
