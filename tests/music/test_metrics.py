"""Quality measures: key fit, melody statistics and the teacher-forced metrics' baseline."""

from __future__ import annotations

import pytest
import torch

from genstudio.music.encoding import MelodyEncoding, Note
from genstudio.music.metrics import in_key_counts, melody_stats, teacher_forced_metrics
from genstudio.music.model import CONFIG_MAP, MusicVAE


def test_in_key_counts_picks_the_best_key() -> None:
    d_major = [Note(p, i, i + 1) for i, p in enumerate([62, 64, 66, 67, 69, 71, 73, 74])]
    assert in_key_counts(d_major) == (8, 8)
    assert in_key_counts(d_major + [Note(63, 8, 9)]) == (8, 9)  # E flat is outside D major
    assert in_key_counts([]) == (0, 0)


def test_melody_stats() -> None:
    stats = melody_stats([[Note(60, 0, 4), Note(67, 4, 8)], []])
    assert stats == {"in_key": 1.0, "notes_per_melody": 1.0, "pitch_range": 3.5, "empty": 0.5}


def test_teacher_forced_metrics_baseline() -> None:
    torch.manual_seed(0)
    model = MusicVAE(CONFIG_MAP["cat-mel_2bar_tiny"]).train()
    enc = MelodyEncoding()
    x = torch.from_numpy(enc.encode([Note(60, 0, 8), Note(62, 8, 16)], 32)).repeat(3, 1)
    m = teacher_forced_metrics(model, x, batch=2)
    assert m["no_event_baseline"] == pytest.approx(29 / 32)  # two note-ons and one note-off in 32 steps
    assert 0.0 <= m["accuracy"] <= 1.0 and m["kl_bits"] >= 0.0
    assert model.training  # restored
