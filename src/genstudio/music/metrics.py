"""Quality measures for melody models: teacher-forced accuracy on held-out windows and simple
statistics of melodies (share of notes in the best-fitting key, density, range)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .encoding import NO_EVENT, Note
from .model import MusicVAE

MAJOR_SCALE = np.array([0, 2, 4, 5, 7, 9, 11])


@torch.no_grad()
def teacher_forced_metrics(model: MusicVAE, tokens: torch.Tensor, batch: int = 512) -> dict[str, float]:
    """Metrics over windows [N, T] with z = mu (deterministic): mean cross-entropy per step, token
    accuracy, accuracy on steps that hold an event (note-on/off), KL in bits, and the accuracy of
    always answering "no event" (the baseline to beat)."""
    was_training = model.training
    model.eval()
    ce_sum, correct, events, events_ok, kl_sum = 0.0, 0, 0, 0, 0.0
    for i in range(0, len(tokens), batch):
        x = tokens[i : i + batch].long()
        mu, sigma = model.encode(x)
        logits = model.decode_teacher_forced(x, mu)
        ce_sum += F.cross_entropy(logits.transpose(1, 2), x, reduction="sum").item()
        pred = logits.argmax(-1)
        ev = x != NO_EVENT
        correct += (pred == x).sum().item()
        events += ev.sum().item()
        events_ok += ((pred == x) & ev).sum().item()
        kl = 0.5 * (sigma.square() + mu.square() - 1.0 - 2.0 * torch.log(sigma + 1e-12)).sum(1)
        kl_sum += kl.sum().item() / math.log(2.0)
    model.train(was_training)
    n_tok = tokens.numel()
    return {
        "r_loss_per_step": ce_sum / n_tok,
        "accuracy": correct / n_tok,
        "event_accuracy": events_ok / max(events, 1),
        "kl_bits": kl_sum / max(len(tokens), 1),
        "no_event_baseline": 1.0 - events / n_tok,
    }


def in_key_counts(melody: Sequence[Note]) -> tuple[int, int]:
    """(notes in the best-fitting diatonic pitch set, i.e. a major key or its relative minor; notes)."""
    if not melody:
        return 0, 0
    pcs = np.bincount([n.pitch % 12 for n in melody], minlength=12)
    return max(int(pcs[(MAJOR_SCALE + k) % 12].sum()) for k in range(12)), len(melody)


def melody_stats(melodies: Sequence[Sequence[Note]]) -> dict[str, float]:
    """Share of notes in each melody's best-fitting key (pooled over notes), mean notes per melody,
    mean pitch range in semitones, and the share of empty melodies."""
    counts = np.array([in_key_counts(m) for m in melodies]).reshape(-1, 2)
    return {
        "in_key": float(counts[:, 0].sum() / max(counts[:, 1].sum(), 1)),
        "notes_per_melody": float(np.mean([len(m) for m in melodies])) if melodies else 0.0,
        "pitch_range": float(np.mean([max(n.pitch for n in m) - min(n.pitch for n in m) if m else 0 for m in melodies]))
        if melodies
        else 0.0,
        "empty": float(np.mean([len(m) == 0 for m in melodies])) if melodies else 0.0,
    }
