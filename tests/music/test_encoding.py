"""Magenta's melody encoding: tokens, round trips, monophonic reduction and MIDI files."""

from __future__ import annotations

import numpy as np
import pytest

from genstudio.music.encoding import (
    NO_EVENT,
    NOTE_OFF,
    MelodyEncoding,
    Note,
    midi_to_notes,
    monophonic,
    notes_to_midi,
    quantize,
)

ENC = MelodyEncoding()


def test_classes_follow_magenta() -> None:
    assert ENC.num_classes == 90  # MusicVAE's OneHotMelodyConverter: piano range 21-108 + 2
    assert MelodyEncoding(48, 83).num_classes == 38  # melody_rnn's default range
    assert ENC.note_on(21) == 2 and ENC.note_on(108) == 89
    with pytest.raises(ValueError, match="outside"):
        ENC.note_on(20)


def test_encode_layout() -> None:
    notes = [Note(60, 0, 4), Note(62, 4, 6), Note(64, 8, 9)]
    tokens = ENC.encode(notes, 16)
    expected = [NO_EVENT] * 16
    expected[0], expected[4], expected[6], expected[8], expected[9] = 41, 43, NOTE_OFF, 45, NOTE_OFF
    assert tokens.tolist() == expected


def test_round_trip() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        notes, t = [], int(rng.integers(0, 3))
        while t < 32:
            length = int(rng.integers(1, 8))
            notes.append(Note(int(rng.integers(21, 109)), t, min(t + length, 32)))
            t += length + int(rng.integers(0, 3))
        assert ENC.decode(ENC.encode(notes, 32)) == notes


def test_repeated_pitch_is_rearticulated_and_window_clips() -> None:
    notes = [Note(60, -2, 2), Note(60, 2, 4), Note(67, 30, 40), Note(70, 33, 35)]
    assert ENC.decode(ENC.encode(notes, 32)) == [Note(60, 0, 2), Note(60, 2, 4), Note(67, 30, 32)]


def test_overlap_is_refused() -> None:
    with pytest.raises(ValueError, match="monophonic"):
        ENC.encode([Note(60, 0, 4), Note(64, 2, 6)], 32)


def test_decode_ignores_stray_note_off_and_rejects_bad_tokens() -> None:
    assert ENC.decode([NOTE_OFF, 0, 41, NOTE_OFF, NOTE_OFF]) == [Note(60, 2, 3)]
    with pytest.raises(ValueError):
        ENC.decode([90])


def test_transpose() -> None:
    tokens = ENC.encode([Note(60, 0, 4), Note(64, 6, 8)], 16)
    up = ENC.transpose(tokens, 5)
    assert ENC.decode(up) == [Note(65, 0, 4), Note(69, 6, 8)]
    with pytest.raises(ValueError, match="range"):
        ENC.transpose(ENC.encode([Note(107, 0, 1)], 4), 5)


def test_monophonic_top_line() -> None:
    chordal = [Note(60, 0, 8), Note(64, 0, 8), Note(67, 0, 4), Note(55, 4, 8), Note(72, 6, 10)]
    # highest at each onset; a later onset cuts the note before it
    assert monophonic(chordal) == [Note(67, 0, 4), Note(55, 4, 6), Note(72, 6, 10)]


def test_quantize_rounds_and_keeps_one_step() -> None:
    triplet = [(0.0, 1 / 3, 60), (1 / 3, 2 / 3, 62), (2 / 3, 1.0, 64)]
    assert quantize(triplet) == [Note(60, 0, 1), Note(62, 1, 3), Note(64, 3, 4)]
    assert quantize([(0.0, 0.05, 60)]) == [Note(60, 0, 1)]


def test_midi_round_trip(tmp_path) -> None:  # noqa: ANN001
    pretty_midi = pytest.importorskip("pretty_midi")
    notes = [Note(60, 0, 4), Note(62, 4, 6), Note(64, 8, 9), Note(67, 12, 32)]
    pm = notes_to_midi(notes, qpm=93.0, program=73)
    path = tmp_path / "m.mid"
    pm.write(str(path))
    back = pretty_midi.PrettyMIDI(str(path))
    assert back.instruments[0].program == 73
    assert midi_to_notes(back) == notes
    with pytest.raises(ValueError):
        notes_to_midi(notes, program=128)
