"""Coconet (Huang et al. 2017, "Counterpoint by Convolution"; the Bach Doodle's model) in PyTorch.

Four voices (soprano, alto, tenor, bass) on an eighth-note grid, one pitch or a rest per voice and step:
a score is `int` array [4, T] of class indices (0 = rest, 1 + pitch - MIN_PITCH). The network sees the
score as one-hot piano rolls [4, T, P] with the positions to fill zeroed, plus the mask itself (8
channels), and predicts a pitch distribution for every voice and step ([B, 4, T, P] logits): a deep
residual 2-D convolution over time x pitch. Trained as an orderless NADE: random positions masked, the
loss on those only. Any voices can be given; the rest are filled by annealed blocked Gibbs sampling
(Yao et al. 2014, as in the paper): start from everything to fill masked, then re-sample a shrinking
random share of those positions, each time from the model's distribution given all the others.

A model is a folder with ``config.json`` (`_class_name: Coconet`) and ``model.safetensors``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .model import ModelFolder

VOICES = ("soprano", "alto", "tenor", "bass")
STEPS_PER_QUARTER = 2  # eighth notes: 98% of the chorales' soprano onsets fall on that grid
REST = 0
# Comfortable SATB ranges (MIDI) used to judge the output, as in harmony textbooks.
VOICE_RANGES = {"soprano": (60, 81), "alto": (53, 74), "tenor": (48, 69), "bass": (36, 62)}


@dataclass(frozen=True)
class CoconetConfig:
    min_pitch: int = 36
    max_pitch: int = 81
    channels: int = 64
    layers: int = 16  # residual blocks, each two 3x3 convolutions
    crop: int = 32  # training crop, eighth notes (4 bars of 4/4)
    description: str = ""

    @property
    def num_classes(self) -> int:
        return self.max_pitch - self.min_pitch + 2  # + rest

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CoconetConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


CONFIGS = {
    "lite": CoconetConfig(channels=64, layers=8, description="genstudio's CPU-trained Coconet (chorale-4voice)."),
    "paper": CoconetConfig(channels=128, layers=32, description="The paper's size (64 conv layers, 128 filters)."),
    "tiny": CoconetConfig(channels=8, layers=1, crop=16, description="For tests only."),
}


class _Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(y)))


class Coconet(ModelFolder, nn.Module):
    config_class = CoconetConfig

    def __init__(self, config: CoconetConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.inp = nn.Sequential(nn.Conv2d(8, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.blocks = nn.Sequential(*[_Block(c) for _ in range(config.layers)])
        self.out = nn.Conv2d(c, 4, 3, padding=1)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def forward(self, score: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """score [B, 4, T] class indices, mask [B, 4, T] (1 = to fill) -> logits [B, 4, T, P]."""
        roll = F.one_hot(score.long(), self.num_classes).float() * (1.0 - mask.float()).unsqueeze(-1)
        m = mask.float().unsqueeze(-1).expand_as(roll)
        return self.out(self.blocks(self.inp(torch.cat([roll, m], dim=1))))

    def loss(self, score: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cross-entropy on the masked positions (mean per masked position), and their accuracy."""
        logits = self(score, mask)
        ce = F.cross_entropy(logits.permute(0, 3, 1, 2), score.long(), reduction="none")  # [B, 4, T]
        m = mask.float()
        n = m.sum().clamp(min=1.0)
        acc = ((logits.argmax(-1) == score).float() * m).sum() / n
        return {"loss": (ce * m).sum() / n, "accuracy": acc}


def random_masks(b: int, t: int, gen: torch.Generator, whole_voice_share: float = 0.5) -> torch.Tensor:
    """Training masks [B, 4, T]: half orderless (a uniform number of random positions, as in the paper),
    half whole voices (a random non-empty subset of voices, the harmonize use)."""
    masks = torch.zeros(b, 4, t)
    kind = torch.rand(b, generator=gen) < whole_voice_share
    for i in range(b):
        if kind[i]:
            voices = torch.rand(4, generator=gen) < 0.5
            if not voices.any():
                voices[torch.randint(4, (1,), generator=gen)] = True
            masks[i, voices] = 1.0
        else:
            k = int(torch.randint(1, 4 * t + 1, (1,), generator=gen))
            flat = torch.zeros(4 * t)
            flat[torch.randperm(4 * t, generator=gen)[:k]] = 1.0
            masks[i] = flat.view(4, t)
    return masks


@torch.no_grad()
def gibbs(
    model: Coconet,
    score: torch.Tensor,
    fill: torch.Tensor,
    *,
    iterations: int = 48,
    temperature: float = 0.75,
    generator: torch.Generator | None = None,
    alpha_min: float = 0.05,
    alpha_max: float = 1.0,
    eta: float = 0.75,
) -> torch.Tensor:
    """Annealed blocked Gibbs: score [4, T] (values at `fill` are ignored), fill [4, T] bool -> score.

    Iteration n masks a random share alpha_n of the fill positions, alpha_n falling linearly from
    `alpha_max` to `alpha_min` over the first `eta` of the iterations, and re-samples them from the model
    at `temperature` (0 = argmax). The first iteration samples every fill position.
    """
    score = score.clone().long()
    fill = fill.bool()
    score[fill] = REST
    mask = fill.clone()
    positions = int(fill.sum())
    if positions == 0:
        return score
    for n in range(iterations):
        if n > 0:
            alpha = max(alpha_min, alpha_max - n * (alpha_max - alpha_min) / (eta * iterations))
            mask = fill & (torch.rand(fill.shape, generator=generator) < alpha)
            if not mask.any():
                continue
        logits = model(score[None], mask[None].float())[0]  # [4, T, P]
        if temperature <= 0:
            pick = logits.argmax(-1)
        else:
            probs = F.softmax(logits / temperature, -1).reshape(-1, logits.shape[-1])
            pick = torch.multinomial(probs, 1, generator=generator).view(logits.shape[:2])
        score = torch.where(mask, pick, score)
    return score


# --- scores <-> notes ---------------------------------------------------------------------------------


def to_class(pitch: int | None, config: CoconetConfig) -> int:
    if pitch is None:
        return REST
    if not config.min_pitch <= pitch <= config.max_pitch:
        raise ValueError(f"pitch {pitch} outside the model's range {config.min_pitch}-{config.max_pitch}")
    return 1 + pitch - config.min_pitch


def to_pitch(cls: int, config: CoconetConfig) -> int | None:
    return None if cls == REST else config.min_pitch + int(cls) - 1


def voice_notes(row: np.ndarray, config: CoconetConfig) -> list[tuple[int, int, int]]:
    """One voice's classes [T] -> (pitch, start, end) in grid steps; equal neighbours are one held note
    (the piano roll cannot tell a repeated note from a held one, as in the paper)."""
    notes: list[tuple[int, int, int]] = []
    for t, c in enumerate(row.tolist()):
        p = to_pitch(c, config)
        if p is None:
            continue
        if notes and notes[-1][0] == p and notes[-1][2] == t:
            notes[-1] = (p, notes[-1][1], t + 1)
        else:
            notes.append((p, t, t + 1))
    return notes


# --- voice-leading measures ---------------------------------------------------------------------------


def parallel_perfects(score: np.ndarray, config: CoconetConfig) -> int:
    """Parallel fifths and octaves (incl. unisons) between any two voices, counted at each change of
    chord: both voices move, in the same direction, from one perfect interval to the same one."""
    count = 0
    t_len = score.shape[1]
    for a in range(4):
        for b in range(a + 1, 4):
            prev = None
            for t in range(t_len):
                pa, pb = to_pitch(score[a, t], config), to_pitch(score[b, t], config)
                if pa is None or pb is None:
                    prev = None
                    continue
                if prev is not None and (pa, pb) != prev:
                    qa, qb = prev
                    interval_now, interval_then = abs(pa - pb) % 12, abs(qa - qb) % 12
                    moved = pa != qa and pb != qb and (pa - qa) * (pb - qb) > 0
                    if moved and interval_now == interval_then and interval_now in (0, 7):
                        count += 1
                prev = (pa, pb)
    return count


def parallel_positions(score: np.ndarray, config: CoconetConfig) -> list[tuple[int, int, int]]:
    """(step, voice a, voice b) where a parallel fifth or octave arrives (as `parallel_perfects` counts)."""
    found = []
    for a in range(4):
        for b in range(a + 1, 4):
            prev = None
            for t in range(score.shape[1]):
                pa, pb = to_pitch(score[a, t], config), to_pitch(score[b, t], config)
                if pa is None or pb is None:
                    prev = None
                    continue
                if prev is not None and (pa, pb) != prev:
                    qa, qb = prev
                    same = abs(pa - pb) % 12 == abs(qa - qb) % 12 and abs(pa - pb) % 12 in (0, 7)
                    if same and pa != qa and pb != qb and (pa - qa) * (pb - qb) > 0:
                        found.append((t, a, b))
                prev = (pa, pb)
    return found


@torch.no_grad()
def reduce_parallels(
    model: Coconet,
    score: torch.Tensor,
    fill: torch.Tensor,
    *,
    rounds: int = 12,
    candidates: int = 4,
    temperature: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A voice-leading pass after Gibbs sampling (rule-based, on top of the model): for a parallel fifth or
    octave, the note of a voice we write that arrives at it (the whole held note) is re-sampled from the
    model given everything else, `candidates` times, and the variant with the fewest parallels in the whole
    piece is kept if it has fewer. Given voices never change."""
    score = score.clone()
    cfg = model.config
    best = parallel_perfects(score.numpy(), cfg)
    for _ in range(rounds):
        spots = [(t, v) for t, a, b in parallel_positions(score.numpy(), cfg) for v in (b, a) if fill[v, t]]
        if not spots:
            break
        t, v = spots[int(torch.randint(len(spots), (1,), generator=generator))]
        lo = hi = t
        while lo > 0 and fill[v, lo - 1] and score[v, lo - 1] == score[v, t]:
            lo -= 1
        while hi + 1 < score.shape[1] and fill[v, hi + 1] and score[v, hi + 1] == score[v, t]:
            hi += 1
        mask = torch.zeros_like(fill)
        mask[v, lo : hi + 1] = True
        logits = model(score[None], mask[None].float())[0, v, lo : hi + 1]  # [len, P]
        # One pitch for the whole note: the sum of its steps' log-probabilities.
        logp = torch.log_softmax(logits, -1).sum(0) / max(temperature, 1e-3)
        picks = torch.multinomial(torch.softmax(logp, -1), candidates, replacement=True, generator=generator)
        for pick in picks.tolist():
            trial = score.clone()
            trial[v, lo : hi + 1] = pick
            count = parallel_perfects(trial.numpy(), cfg)
            if count < best:
                score, best = trial, count
    return score


def out_of_range(score: np.ndarray, config: CoconetConfig, voices: tuple[int, ...] = (0, 1, 2, 3)) -> tuple[int, int]:
    """(notes outside their voice's comfortable range, notes) over the given voices."""
    bad = total = 0
    for v in voices:
        lo, hi = VOICE_RANGES[VOICES[v]]
        for p, _s, _e in voice_notes(score[v], config):
            total += 1
            bad += not lo <= p <= hi
    return bad, total
