"""Harmonize a melody with Coconet: the melody (16th grid) becomes one voice of a four-voice score on the
model's eighth-note grid, the other voices are filled by Gibbs sampling, and come back as parts on the
16th grid.

- The melody takes the highest voice not asked for (soprano unless "soprano" is in `voices`); every
  other voice is filled too (the model expects a full texture) and the ones asked for are returned.
- The melody is moved by whole octaves so that its middle sits in its voice's range; the written voices
  move back by the same octaves, so the harmony sits under the melody as the user gave it.
- After sampling, a voice-leading pass (rule-based, `coconet.reduce_parallels`) re-samples notes that
  arrive at parallel fifths or octaves and keeps a variant only if the piece has fewer of them.
- On the eighth grid a voice holds the pitch sounding at each eighth (a note starting on an off-beat 16th
  counts from the next eighth); the piano roll cannot tell a repeated note from a held one, so equal
  neighbours in a written voice become one note, as in the paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .coconet import REST, VOICE_RANGES, VOICES, Coconet, gibbs, reduce_parallels, to_class, voice_notes
from .encoding import STEPS_PER_QUARTER, Note

GRID = STEPS_PER_QUARTER // 2  # 16th steps per eighth


@dataclass
class Harmonization:
    melody_voice: str
    octave_shift: int  # semitones the melody was moved for the model (the parts are moved back)
    parts: dict[str, list[Note]]
    score: np.ndarray  # [4, T] classes on the eighth grid, in the model's octave


def melody_voice(voices: Sequence[str]) -> str:
    free = [v for v in VOICES if v not in voices]
    if not free:
        raise ValueError("one voice must hold the melody")
    return free[0]


def to_grid(notes: Sequence[Note], steps16: int, shift: int, model: Coconet) -> np.ndarray:
    """Melody notes -> classes [T] on the eighth grid (sounding pitch at each eighth, or a rest)."""
    t_len = max(1, -(-steps16 // GRID))
    row = np.full(t_len, REST, np.int64)
    cfg = model.config
    for n in notes:
        a, b = -(-n.start // GRID), -(-n.end // GRID)
        p = n.pitch + shift
        while p < cfg.min_pitch:
            p += 12
        while p > cfg.max_pitch:
            p -= 12
        row[a:b] = to_class(p, cfg)
    return row


def octave_shift(notes: Sequence[Note], voice: str) -> int:
    """Whole octaves that bring the melody's median pitch nearest its voice's range centre."""
    if not notes:
        return 0
    lo, hi = VOICE_RANGES[voice]
    median = float(np.median([n.pitch for n in notes]))
    return 12 * round(((lo + hi) / 2 - median) / 12)


def harmonize(
    model: Coconet,
    notes: Sequence[Note],
    steps16: int,
    voices: Sequence[str],
    *,
    n: int = 1,
    temperature: float = 0.75,
    iterations: int = 48,
    voice_leading_rounds: int = 24,
    generator: torch.Generator | None = None,
) -> list[Harmonization]:
    voice = melody_voice(voices)
    shift = octave_shift(notes, voice)
    row = to_grid(notes, steps16, shift, model)
    v = VOICES.index(voice)
    score = np.zeros((4, len(row)), np.int64)
    score[v] = row
    fill = torch.ones(4, len(row), dtype=torch.bool)
    fill[v] = False
    out = []
    for _ in range(n):
        filled_t = gibbs(
            model, torch.from_numpy(score), fill, iterations=iterations, temperature=temperature, generator=generator
        )
        if voice_leading_rounds:
            filled_t = reduce_parallels(model, filled_t, fill, rounds=voice_leading_rounds, generator=generator)
        filled = filled_t.numpy()
        parts = {}
        for name in voices:
            notes8 = voice_notes(filled[VOICES.index(name)], model.config)
            parts[name] = [
                Note(p - shift, s * GRID, min(e * GRID, steps16)) for p, s, e in notes8 if s * GRID < steps16
            ]
        out.append(Harmonization(voice, shift, parts, filled))
    return out
