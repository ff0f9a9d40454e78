"""Corpus windows: ties, chords, grace notes, pickups and meters on small hand-made tunes."""

from __future__ import annotations

import numpy as np
import pytest

from genstudio.music.data import (
    Tune,
    is_valid_tune,
    make_windows,
    split_abc,
    stream_to_tune,
    transposition_key,
    tune_windows,
    window_starts,
)
from genstudio.music.encoding import MelodyEncoding, Note

ENC = MelodyEncoding()


def hand_made_score():  # noqa: ANN201
    music21 = pytest.importorskip("music21")
    from music21 import chord, harmony, meter, note, stream, tie

    def n(name: str, ql: float, tie_type: str | None = None) -> note.Note:
        x = note.Note(name, quarterLength=ql)
        if tie_type:
            x.tie = tie.Tie(tie_type)
        return x

    part = stream.Part()
    m0 = stream.Measure(number=0)  # pickup: one beat of 4/4
    m0.timeSignature = meter.TimeSignature("4/4")
    m0.append(n("G4", 1))
    m0.paddingLeft = 3
    m1 = stream.Measure(number=1)
    m1.append([n("E4", 2), n("C5", 2, "start")])
    m2 = stream.Measure(number=2)
    m2.insert(0, harmony.ChordSymbol("C"))
    m2.append(n("C5", 1, "stop"))  # same-pitch tie across the bar line: one note
    m2.append([n("D5", 1, "start"), n("E5", 1, "stop")])  # O'Neill's-style tie between pitches: two notes
    m2.append(note.Note("A5", quarterLength=0.5).getGrace())
    m2.append(chord.Chord(["C5", "E5", "G5"], quarterLength=1))  # top note only
    m3 = stream.Measure(number=3)
    m3.append(n("F5", 4))
    measures = [m0, m1, m2, m3]
    for i in range(4):
        m = stream.Measure(number=4 + i)
        if i == 0:
            m.timeSignature = meter.TimeSignature("2/4")
        m.append([n("A4", 1), n("B4", 1)])
        measures.append(m)
    for i in range(2):
        m = stream.Measure(number=8 + i)
        if i == 0:
            m.timeSignature = meter.TimeSignature("3/4")
        m.append(n("C5", 3))
        measures.append(m)
    for m in measures:
        part.append(m)
    score = stream.Score()
    score.insert(0, part)
    del music21
    return score


def test_stream_to_tune_merges_ties_by_hand_and_takes_top_notes() -> None:
    tune = stream_to_tune(hand_made_score(), "test#0")
    assert tune.bars[:3] == [(0.0, 1.0, 4.0, "4/4"), (1.0, 4.0, 4.0, "4/4"), (5.0, 4.0, 4.0, "4/4")]
    assert tune.bars[4] == (13.0, 2.0, 2.0, "2/4") and tune.bars[8] == (21.0, 3.0, 3.0, "3/4")
    assert tune.notes[:7] == [
        (0.0, 1.0, 67),
        (1.0, 3.0, 64),
        (3.0, 6.0, 72),
        (6.0, 7.0, 74),
        (7.0, 8.0, 76),
        (8.0, 9.0, 79),
        (9.0, 13.0, 77),
    ]


def test_windows_are_whole_full_bars_of_one_meter() -> None:
    tune = stream_to_tune(hand_made_score(), "test#0")
    # 4/4 from bar 1 (the pickup is not full) and bar 2; bar 3 + 2/4 mixes meters; 4 bars of 2/4; no 3/4
    assert window_starts(tune, 32) == [4, 20, 52]
    wins = tune_windows(tune, ENC)
    assert len(wins) == 3
    assert ENC.decode(wins[0]) == [
        Note(64, 0, 8),
        Note(72, 8, 20),
        Note(74, 20, 24),
        Note(76, 24, 28),
        Note(79, 28, 32),
    ]
    # the tied C5 sounds into the second window: clipped to start at step 0
    assert ENC.decode(wins[1]) == [Note(72, 0, 4), Note(74, 4, 8), Note(76, 8, 12), Note(79, 12, 16), Note(77, 16, 32)]
    assert ENC.decode(wins[2]) == [Note(69 + 2 * (i % 2), 4 * i, 4 * i + 4) for i in range(8)]


def test_abc_tune_with_pickup_and_tie() -> None:
    pytest.importorskip("music21")
    from genstudio.music.data import parse_abc_text

    abc = 'X:1\nT:Test\nM:4/4\nL:1/8\nK:C\nG2|c4 e4-|e2 d2 "G"[GB]4|c8|]\n'
    tune = parse_abc_text(abc, "t#0")
    assert tune.title == "Test"
    assert tune.notes == [
        (0.0, 1.0, 67),
        (1.0, 3.0, 72),
        (3.0, 6.0, 76),
        (6.0, 7.0, 74),
        (7.0, 9.0, 71),
        (9.0, 13.0, 72),
    ]
    assert window_starts(tune, 32) == [4, 20]


def test_split_abc_keeps_header() -> None:
    text = "% comment\nN:book header\n\nX:1\nT:A\nK:C\nC|\n\nX:2\nT:B\nK:G\nG|\n"
    tunes = split_abc(text)
    assert len(tunes) == 2
    assert tunes[0].startswith("N:book header") and "X:1" in tunes[0] and "X:2" not in tunes[0]
    assert "comment" not in tunes[1] and "T:B" in tunes[1]


def simple_tune(key: str, shift: int) -> Tune:
    notes = [(float(i), float(i + 1), 60 + shift + (i % 3)) for i in range(8)]
    return Tune(key, key, [(0.0, 4.0, 4.0, "4/4"), (4.0, 4.0, 4.0, "4/4")], notes)


def keys(split_valid: bool, n: int) -> list[str]:
    return [k for k in (f"t/{i}#0" for i in range(1000)) if is_valid_tune(k, 10.0) == split_valid][:n]


def test_split_is_by_tune_and_dedupes_transpositions() -> None:
    train_keys, valid_keys = keys(False, 3), keys(True, 2)
    tunes = [
        simple_tune(train_keys[0], 0),
        simple_tune(train_keys[1], 3),  # a transposition of the first: deduped
        Tune(train_keys[2], "", [(0.0, 4.0, 4.0, "4/4"), (4.0, 4.0, 4.0, "4/4")], [(0.0, 8.0, 60), (0.0, 1.0, 50)]),
        simple_tune(valid_keys[0], 7),  # the same melody in another book: dropped from valid
        Tune(valid_keys[1], "", [(0.0, 4.0, 4.0, "4/4"), (4.0, 4.0, 4.0, "4/4")], [(0.0, 2.0, 60), (2.0, 8.0, 65)]),
    ]
    out = make_windows(tunes, ENC)
    # tune 2's melody line is one held note (the 50 under it is not the top line): below min_notes=2
    assert out["train"].shape == (1, 32) and out["train"].dtype == np.uint8
    assert out["valid"].shape == (1, 32)
    assert out["train_tune"].tolist() == [0] and out["valid_tune"].tolist() == [4]
    assert out["stats"]["valid_dropped_as_in_train"] == 1
    assert make_windows(tunes, ENC, min_notes=1)["train_tune"].tolist() == [0, 2]
    assert ENC.decode(out["valid"][0]) == [Note(60, 0, 8), Note(65, 8, 32)]


def test_split_and_keys_are_stable() -> None:
    assert is_valid_tune("oneills1850/0001-0050.abc#0", 10.0) == is_valid_tune("oneills1850/0001-0050.abc#0", 10.0)
    share = np.mean([is_valid_tune(f"x/{i}", 10.0) for i in range(5000)])
    assert 0.08 < share < 0.12
    a = ENC.encode([Note(60, 0, 4), Note(64, 4, 8)], 16)
    assert transposition_key(a) == transposition_key(ENC.transpose(a, 4))
    assert transposition_key(a) != transposition_key(ENC.encode([Note(60, 0, 4), Note(65, 4, 8)], 16))


def test_window_batches_cover_an_epoch_and_stay_in_range() -> None:
    import torch

    from genstudio.music.data import WindowBatches

    enc = MelodyEncoding(60, 71)  # 14 classes: tight, so clamping matters
    rows = np.stack([enc.encode([Note(60 + i, 0, 4), Note(62 + i, 4, 8)], 8) for i in range(8)])
    batches = WindowBatches(rows, enc.num_classes, transpose=5)
    gen = torch.Generator().manual_seed(0)
    seen = []
    for _ in range(4):
        x = batches.batch(2, gen)
        assert x.shape == (2, 8) and x.dtype == torch.int64
        assert x.max() < enc.num_classes and (x[x > 1] >= 2).all()
        for row in x.numpy():
            notes = enc.decode(row)
            assert [n.pitch - notes[0].pitch for n in notes] == [0, 2]  # transposed as a whole
            assert [(n.start, n.end) for n in notes] == [(0, 4), (4, 8)]
            seen.append(row)
    assert len(seen) == 8
    assert not np.array_equal(np.stack(seen), rows[np.argsort([r[0] for r in rows])])  # some were transposed
