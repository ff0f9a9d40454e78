"""Keys, chords and the small music theory the composer needs: key finding (Krumhansl-Kessler
profiles, duration-weighted), transposition into a requested key, chord symbols, and how well a
melody follows a chord progression."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .encoding import Note

PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
NAMES_SHARP = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
NAMES_FLAT = ["C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B"]
# Keys conventionally spelled with flats (major tonic; minor tonic).
FLAT_MAJOR = {5, 10, 3, 8, 1, 6}
FLAT_MINOR = {2, 7, 0, 5, 10, 3}

# Krumhansl & Kessler (1982) probe-tone profiles, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)  # natural minor; the raised 7th is scored by the profile


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class 0-11
    mode: str  # "major" | "minor"
    spelling: str | None = field(default=None, compare=False)  # "sharp" / "flat": how the user wrote it

    def _flats(self) -> bool:
        default = self.tonic in (FLAT_MAJOR if self.mode == "major" else FLAT_MINOR)
        if self.spelling is None:
            return default
        flats = self.spelling == "flat"
        # Honour the user's spelling where it makes a real key signature (F# major yes, Db minor no).
        return flats if abs(self._fifths(flats)) <= 7 else default

    def _fifths(self, flats: bool) -> int:
        major_tonic = self.tonic if self.mode == "major" else (self.tonic + 3) % 12
        f = (major_tonic * 7) % 12
        return f - 12 if flats else f

    @property
    def name(self) -> str:
        return f"{(NAMES_FLAT if self._flats() else NAMES_SHARP)[self.tonic]} {self.mode}"

    @property
    def scale(self) -> frozenset[int]:
        steps = MAJOR_SCALE if self.mode == "major" else MINOR_SCALE
        return frozenset((self.tonic + s) % 12 for s in steps)

    @property
    def fifths(self) -> int:
        """Sharps (positive) or flats (negative) of the key signature."""
        return self._fifths(self._flats())


def _pitch_class(text: str) -> tuple[int, str]:
    """'C#' / 'Bb' / 'f' at the start of text -> (pitch class, rest of text)."""
    if not text or text[0].upper() not in PITCH_CLASSES:
        raise ValueError(f"{text!r} does not start with a note name A-G")
    pc = PITCH_CLASSES[text[0].upper()]
    rest = text[1:]
    while rest[:1] in ("#", "b", "♯", "♭"):
        pc += 1 if rest[0] in "#♯" else -1
        rest = rest[1:]
    return pc % 12, rest


def parse_key(text: str) -> Key:
    """'D minor', 'Eb major', 'f# min', 'A' (major), 'Am' -> Key. ValueError names what is wrong."""
    s = text.strip()
    if not s:
        raise ValueError("empty key")
    tonic, rest = _pitch_class(s)
    accidentals = s[1 : len(s) - len(rest)]
    spelling = "sharp" if accidentals[:1] in ("#", "♯") else "flat" if accidentals[:1] in ("b", "♭") else None
    rest = rest.strip().lower()
    if rest in ("", "maj", "major", "ionian"):
        return Key(tonic, "major", spelling)
    if rest in ("m", "min", "minor", "aeolian"):
        return Key(tonic, "minor", spelling)
    raise ValueError(f"unknown mode {rest!r} in key {text!r}: use major or minor, e.g. 'D minor'")


def pitch_class_weights(notes: Sequence[Note]) -> np.ndarray:
    w = np.zeros(12)
    for n in notes:
        w[n.pitch % 12] += max(n.end - n.start, 1)
    return w


def key_scores(notes: Sequence[Note]) -> list[tuple[float, Key]]:
    """Correlation of the melody's duration-weighted pitch classes with each of the 24 key profiles."""
    w = pitch_class_weights(notes)
    if w.sum() == 0 or np.allclose(w, w.mean()):
        return [(0.0, Key(0, "major"))]
    out = []
    for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            r = float(np.corrcoef(w, np.roll(profile, tonic))[0, 1])
            out.append((r, Key(tonic, mode)))
    return sorted(out, key=lambda t: -t[0])


def find_key(notes: Sequence[Note], mode: str | None = None) -> tuple[Key, float]:
    """The best-fitting key (optionally of one mode) and its correlation."""
    for r, key in key_scores(notes):
        if mode is None or key.mode == mode:
            return key, r
    return Key(0, mode or "major"), 0.0


def in_key_share(notes: Sequence[Note], key: Key) -> float:
    if not notes:
        return 0.0
    scale = key.scale
    return sum(n.pitch % 12 in scale for n in notes) / len(notes)


def transpose(notes: Sequence[Note], semitones: int) -> list[Note]:
    return [Note(n.pitch + semitones, n.start, n.end) for n in notes]


def fit_range(notes: Sequence[Note], low: int = 21, high: int = 108, centre: int = 72) -> list[Note]:
    """Shift by whole octaves so the melody sits around `centre` and inside [low, high]."""
    if not notes:
        return list(notes)
    pitches = [n.pitch for n in notes]
    shift = 12 * round((centre - float(np.median(pitches))) / 12)
    while min(pitches) + shift < low:
        shift += 12
    while max(pitches) + shift > high:
        shift -= 12
    return transpose(notes, shift)


def to_key(notes: Sequence[Note], target: Key, centre: int = 72) -> tuple[list[Note], Key, int]:
    """Transpose a melody from its best-fitting key of `target.mode` into `target`.

    Returns (notes, the key found before transposing, semitones moved, octave shifts excluded)."""
    found, _ = find_key(notes, target.mode)
    shift = (target.tonic - found.tonic) % 12
    if shift > 6:
        shift -= 12
    return fit_range(transpose(notes, shift), centre=centre), found, shift


# Chord symbols: root, optional quality, optional /bass (ignored for the melody's fit).
CHORD_QUALITIES: dict[str, tuple[int, ...]] = {
    "": (0, 4, 7),
    "maj": (0, 4, 7),
    "m": (0, 3, 7),
    "min": (0, 3, 7),
    "-": (0, 3, 7),
    "7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "m7": (0, 3, 7, 10),
    "min7": (0, 3, 7, 10),
    "dim": (0, 3, 6),
    "dim7": (0, 3, 6, 9),
    "m7b5": (0, 3, 6, 10),
    "aug": (0, 4, 8),
    "+": (0, 4, 8),
    "sus2": (0, 2, 7),
    "sus4": (0, 5, 7),
    "6": (0, 4, 7, 9),
    "m6": (0, 3, 7, 9),
    "9": (0, 4, 7, 10, 2),
    "add9": (0, 4, 7, 2),
}
_CHORD_RE = re.compile(r"^([A-Ga-g](?:#|b|♯|♭)?)([A-Za-z0-9+\-]*)(?:/([A-Ga-g](?:#|b)?))?$")


@dataclass(frozen=True)
class Chord:
    symbol: str
    root: int
    tones: frozenset[int]


def parse_chord(symbol: str) -> Chord:
    m = _CHORD_RE.match(symbol.strip())
    if not m:
        raise ValueError(f"chord {symbol!r} is not a chord symbol like C, Am, G7, F#m7b5, Bb/D")
    root, _ = _pitch_class(m.group(1))
    quality = m.group(2)
    if quality not in CHORD_QUALITIES:
        known = ", ".join(q or "(major)" for q in CHORD_QUALITIES)
        raise ValueError(f"chord {symbol!r}: unknown quality {quality!r} (known: {known})")
    return Chord(symbol.strip(), root, frozenset((root + i) % 12 for i in CHORD_QUALITIES[quality]))


def parse_progression(text: str | Sequence[str]) -> list[Chord]:
    """'C G Am F' or 'C | G | Am | F' or a list -> one chord per bar, in order."""
    items = text.replace("|", " ").replace(",", " ").split() if isinstance(text, str) else list(text)
    if not items:
        raise ValueError("the chord progression is empty")
    return [parse_chord(s) for s in items]


def key_of_progression(chords: Sequence[Chord]) -> Key:
    """The key a progression implies: the first chord's root, minor if that chord has a minor third."""
    first = chords[0]
    return Key(first.root, "minor" if (first.root + 3) % 12 in first.tones else "major")


def chord_fit(notes: Sequence[Note], chords: Sequence[Chord], steps_per_bar: int = 16) -> float:
    """Share of the melody's beat-weighted sounding time on chord tones of the bar's chord.

    Each bar takes the next chord (the progression repeats); notes sounding on a beat (every 4 steps)
    count double, so passing tones between beats are allowed."""
    if not notes or not chords:
        return 0.0
    good = total = 0.0
    for n in notes:
        for step in range(n.start, n.end):
            chord = chords[(step // steps_per_bar) % len(chords)]
            w = 2.0 if step % 4 == 0 else 1.0
            total += w
            good += w if n.pitch % 12 in chord.tones else 0.0
    return good / total if total else 0.0


def notes_per_bar(notes: Sequence[Note], bars: int) -> float:
    return len(notes) / max(bars, 1)
