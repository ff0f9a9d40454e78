"""Training melodies from music21's folk-tune corpus: ABC tunes -> cached note lists -> 2-bar token windows.

Parsing ABC is slow (~60 ms a tune), so `parse_source` appends each tune to a JSON-lines cache and
resumes from it; `make_windows` turns cached tunes into meter-aware windows of whole bars.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .encoding import FIRST_NOTE_ON, STEPS_PER_QUARTER, MelodyEncoding, Note, monophonic, quantize


@dataclass(frozen=True)
class Source:
    """A folder of music21's corpus and what may be done with it."""

    name: str
    folder: str
    licence: str
    public_domain: bool


SOURCES: dict[str, Source] = {
    s.name: s
    for s in [
        Source(
            "oneills1850",
            "oneills1850",
            "O'Neill's Music of Ireland (1903 edition, '1850 melodies'): public domain; ABC transcription "
            "by Norbert Paap states no licence.",
            True,
        ),
        Source(
            "ryansMammoth",
            "ryansMammoth",
            "Ryan's Mammoth Collection (1883): public domain; ABC contributions state no licence.",
            True,
        ),
        Source(
            "airdsAirs",
            "airdsAirs",
            "Aird's Selection of Scotch, English, Irish and Foreign Airs (1778-1803): public domain; ABC by "
            "Jack Campin states no licence.",
            True,
        ),
        Source(
            "essenFolksong",
            "essenFolksong",
            "Essen Folksong Collection (EsAC), ABC by Seymour Shlien: permission for NON-COMMERCIAL use only; "
            "legal status 'unclear' (music21 corpus/essenFolksong/license.txt).",
            False,
        ),
    ]
}
DEFAULT_SOURCES = ("oneills1850", "ryansMammoth", "airdsAirs")


def corpus_root() -> Path:
    import music21

    return Path(music21.__file__).resolve().parent / "corpus"


def split_abc(text: str) -> list[str]:
    """An ABC file -> one text per tune; the file header (before the first X:) is prepended to each."""
    parts = re.split(r"(?m)^(?=X:)", text)
    header, tunes = parts[0], parts[1:]
    keep = "\n".join(line for line in header.splitlines() if not line.startswith("%"))
    return [(keep + "\n" + t) if keep.strip() else t for t in tunes]


@dataclass
class Tune:
    """One parsed tune. Offsets are in quarter notes from the tune's start.

    `bars` lists every measure as (offset, actual length, nominal bar length, time signature) so that
    windows can keep to whole, full bars; `notes` is (start, end, MIDI pitch) with ties merged.
    """

    key: str
    title: str
    bars: list[tuple[float, float, float, str]] = field(default_factory=list)
    notes: list[tuple[float, float, int]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "bars": self.bars, "notes": self.notes}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Tune:
        return cls(d["key"], d["title"], [tuple(b) for b in d["bars"]], [tuple(n) for n in d["notes"]])


def _q(x: Any) -> float:
    """music21 offsets may be Fractions (triplets); JSON wants floats."""
    return float(Fraction(x)) if not isinstance(x, float) else x


def stream_to_tune(score: Any, key: str) -> Tune:
    """A music21 Score (or Part) -> Tune: top pitch of chords, grace notes and chord symbols dropped, and
    ties merged by hand (stripTies mis-merges O'Neill's ties between different pitches): a tied note
    continues only into the next note that starts where it ends and has the same pitch."""
    from music21 import harmony, note, stream

    parts = list(score.parts) if isinstance(score, stream.Score) and score.parts else [score]
    title = score.metadata.title if score.metadata is not None and score.metadata.title else ""
    tune = Tune(key=key, title=title or "")

    ts_name, bar_len = "", 0.0
    for m in parts[0].getElementsByClass(stream.Measure):
        if m.timeSignature is not None:
            ts_name, bar_len = m.timeSignature.ratioString, _q(m.timeSignature.barDuration.quarterLength)
        tune.bars.append((_q(m.offset), _q(m.duration.quarterLength), bar_len, ts_name))

    events: list[tuple[float, float, int, bool, bool]] = []  # start, end, pitch, tie continues in, tie goes on
    for part in parts:
        for el in part.flatten().notes:
            if isinstance(el, harmony.ChordSymbol) or el.duration.isGrace:
                continue
            if isinstance(el, note.Note):
                pitch = el.pitch.midi
            elif el.pitches:
                pitch = max(p.midi for p in el.pitches)
            else:
                continue
            start = _q(el.offset)
            tie = el.tie.type if el.tie is not None else None
            events.append(
                (start, start + _q(el.quarterLength), pitch, tie in ("stop", "continue"), tie in ("start", "continue"))
            )
    events.sort(key=lambda e: (e[0], -e[2]))
    merged: list[list[float]] = []
    open_tie: dict[int, int] = {}  # pitch -> index in merged of a note whose tie goes on
    for start, end, pitch, tied_in, tie_on in events:
        i = open_tie.pop(pitch, None)
        if tied_in and i is not None and abs(merged[i][1] - start) < 1e-6:
            merged[i][1] = end
        else:
            i = len(merged)
            merged.append([start, end, pitch])
        if tie_on:
            open_tie[pitch] = i
    tune.notes = [(s, e, int(p)) for s, e, p in merged]
    return tune


def parse_abc_text(text: str, key: str) -> Tune:
    from music21 import converter

    return stream_to_tune(converter.parse(text, format="abc", forceSource=True), key)


def iter_source_tunes(source: Source) -> Iterator[tuple[str, str]]:
    """(key, ABC text) for each tune of a corpus folder, key = 'source/file#index'."""
    folder = corpus_root() / source.folder
    for path in sorted(folder.rglob("*.abc")):
        text = path.read_text(encoding="utf-8", errors="replace")
        for i, tune_text in enumerate(split_abc(text)):
            yield f"{source.name}/{path.relative_to(folder).as_posix()}#{i}", tune_text


def parse_source(
    source: Source, cache_dir: Path, progress: Callable[[Iterable[Any], int, str], Iterable[Any]] | None = None
) -> list[Tune]:
    """Parse every tune of `source`, appending to `cache_dir/parsed/NAME.jsonl` and resuming from it.

    A tune that music21 cannot parse is recorded as an error line and skipped. `progress(iterable,
    total, description)` wraps the loop (e.g. tqdm).
    """
    path = cache_dir / "parsed" / f"{source.name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                d = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by an interrupted run
                continue
            done[d["key"]] = d
    todo = [(k, t) for k, t in iter_source_tunes(source) if k not in done]
    if todo:
        with path.open("a") as f:
            loop: Iterable[tuple[str, str]] = progress(todo, len(todo), source.name) if progress else todo
            for key, text in loop:
                try:
                    d = parse_abc_text(text, key).to_json()
                except Exception as exc:  # noqa: BLE001 -- music21 raises many kinds on bad ABC
                    d = {"key": key, "error": f"{type(exc).__name__}: {exc}"[:300]}
                f.write(json.dumps(d) + "\n")
                f.flush()
                done[key] = d
    return [Tune.from_json(d) for d in done.values() if "error" not in d]


def window_starts(tune: Tune, num_steps: int, steps_per_quarter: int = STEPS_PER_QUARTER) -> list[int]:
    """Step offsets where a window of `num_steps` covers whole, full bars of one meter.

    A bar qualifies if its length matches its time signature (pickups and split repeat bars do not) and
    `num_steps` is a whole number of its bars: 2 bars of 4/4 or 2/2, 4 bars of 2/4; 3/4, 6/8 etc. give
    no windows of 32 steps. Windows start at every qualifying bar line (hop of one bar).
    """
    starts = []
    bars = tune.bars
    for i, (offset, _length, bar_len, ts) in enumerate(bars):
        bar_steps = bar_len * steps_per_quarter
        if bar_steps <= 0 or abs(bar_steps - round(bar_steps)) > 1e-6 or num_steps % round(bar_steps):
            continue
        need = num_steps // round(bar_steps)
        run = bars[i : i + need]
        if len(run) < need:
            continue
        ok = all(abs(b[1] - bar_len) < 1e-6 and b[2] == bar_len and b[3] == ts for b in run) and all(
            abs(run[j + 1][0] - (run[j][0] + run[j][1])) < 1e-6 for j in range(need - 1)
        )
        if ok:
            start = offset * steps_per_quarter
            if abs(start - round(start)) < 1e-6:
                starts.append(round(start))
    return starts


def tune_windows(tune: Tune, encoding: MelodyEncoding, num_steps: int = 32, min_notes: int = 2) -> list[np.ndarray]:
    """Token windows [num_steps] of a tune's melody line; a note sounding into a window is clipped so
    that it starts at step 0. Windows with fewer than `min_notes` note-ons are dropped."""
    return [w for _, w in tune_windows_at(tune, encoding, num_steps, min_notes)]


def tune_windows_at(
    tune: Tune, encoding: MelodyEncoding, num_steps: int = 32, min_notes: int = 2
) -> list[tuple[int, np.ndarray]]:
    """`tune_windows` with each window's start step."""
    notes = monophonic(quantize(tune.notes))
    out = []
    for w0 in window_starts(tune, num_steps):
        inside = [
            Note(n.pitch, max(n.start, w0) - w0, min(n.end, w0 + num_steps) - w0)
            for n in notes
            if n.end > w0 and n.start < w0 + num_steps
        ]
        if len(inside) < min_notes or any(not encoding.min_pitch <= n.pitch <= encoding.max_pitch for n in inside):
            continue
        out.append((w0, encoding.encode(inside, num_steps)))
    return out


def paired_windows(tune: Tune, encoding: MelodyEncoding, half: int = 128, min_notes: int = 2) -> list[np.ndarray]:
    """Long windows [2 * half] made of two windows of `half` steps of the same tune, the second starting
    at the first window start at least `half` steps after the first's start (the next phrase; a short
    bar between them, which breaks a run of full bars, is skipped). Few folk tunes have 16 full bars in a
    row (pickup bars and repeat endings are short), but most have two 8-bar phrases."""
    wins = tune_windows_at(tune, encoding, half, min_notes)
    out = []
    for i, (s0, w0) in enumerate(wins):
        nxt = next(((s1, w1) for s1, w1 in wins[i + 1 :] if s1 >= s0 + half), None)
        if nxt is not None and nxt[0] - s0 <= half + 16:  # at most one bar skipped between the phrases
            out.append(np.concatenate([w0, nxt[1]]))
    return out


def is_valid_tune(key: str, valid_percent: float) -> bool:
    """Stable split by tune: a hash of the tune's key, so adding sources never moves a tune."""
    h = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16)
    return (h % 10000) < valid_percent * 100


def transposition_key(tokens: np.ndarray) -> bytes:
    """Identical for windows that differ only by transposition (note-ons relative to the first one)."""
    t = tokens.astype(np.int16).copy()
    on = t >= FIRST_NOTE_ON
    if on.any():
        t[on] -= t[on][0] - FIRST_NOTE_ON
    return t.tobytes()


def make_windows(
    tunes: list[Tune],
    encoding: MelodyEncoding,
    num_steps: int = 32,
    valid_percent: float = 10.0,
    min_notes: int = 2,
    paired: bool = False,
) -> dict[str, Any]:
    """Split by tune, window, and dedupe up to transposition (training transposes anyway); valid windows
    that also occur in train (the same tune in two books) are dropped. With `paired`, long windows are
    also made of two consecutive half-length phrases (`paired_windows`). Returns arrays and statistics."""
    seen: dict[str, dict[bytes, None]] = {"train": {}, "valid": {}}
    rows: dict[str, list[np.ndarray]] = {"train": [], "valid": []}
    tune_ids: dict[str, list[int]] = {"train": [], "valid": []}
    counts = {"tunes": len(tunes), "tunes_with_windows": 0, "windows_total": 0}
    per_meter: dict[str, int] = {}
    for ti, tune in enumerate(tunes):
        wins = tune_windows(tune, encoding, num_steps, min_notes)
        if paired:
            wins += paired_windows(tune, encoding, num_steps // 2, min_notes)
        meter = tune.bars[0][3] if tune.bars else "?"
        per_meter[meter] = per_meter.get(meter, 0) + 1
        if not wins:
            continue
        counts["tunes_with_windows"] += 1
        counts["windows_total"] += len(wins)
        split = "valid" if is_valid_tune(tune.key, valid_percent) else "train"
        for w in wins:
            k = transposition_key(w)
            if k in seen[split]:
                continue
            seen[split][k] = None
            rows[split].append(w)
            tune_ids[split].append(ti)
    keep = [i for i, w in enumerate(rows["valid"]) if transposition_key(w) not in seen["train"]]
    counts["valid_dropped_as_in_train"] = len(rows["valid"]) - len(keep)
    rows["valid"] = [rows["valid"][i] for i in keep]
    tune_ids["valid"] = [tune_ids["valid"][i] for i in keep]
    out: dict[str, Any] = {}
    for split in ("train", "valid"):
        out[split] = np.stack(rows[split]).astype(np.uint8) if rows[split] else np.zeros((0, num_steps), np.uint8)
        out[f"{split}_tune"] = np.array(tune_ids[split], dtype=np.int32)
        counts[f"{split}_windows"] = len(rows[split])
        counts[f"{split}_tunes"] = len(set(tune_ids[split]))
    counts["first_bar_meters"] = dict(sorted(per_meter.items(), key=lambda kv: -kv[1]))
    valid = out["valid"]
    counts["valid_no_event_fraction"] = float((valid == 0).mean()) if len(valid) else 0.0
    out["stats"] = counts
    return out


class WindowBatches:
    """Training windows [N, T] in memory; batches [B, T] int64 are drawn epoch by epoch (each window once
    per epoch, in a fresh random order) and each row is transposed by up to +-`transpose` semitones,
    clamped so that no pitch leaves the encoding's range (Magenta augments with transpose_range=(-5, 5))."""

    def __init__(self, tokens: np.ndarray, num_classes: int, transpose: int) -> None:
        self.tokens = torch.from_numpy(tokens.astype(np.int64))
        self.num_classes, self.transpose = num_classes, transpose
        on = self.tokens >= FIRST_NOTE_ON
        big = torch.iinfo(torch.int64).max
        self.lo = torch.where(on, self.tokens, torch.full_like(self.tokens, big)).min(1).values
        self.hi = torch.where(on, self.tokens, torch.zeros_like(self.tokens)).max(1).values
        self.order = torch.empty(0, dtype=torch.long)
        self.pos = 0

    def batch(self, n: int, gen: torch.Generator) -> torch.Tensor:
        if self.pos + n > len(self.order):
            self.order, self.pos = torch.randperm(len(self.tokens), generator=gen), 0
        idx = self.order[self.pos : self.pos + n]
        self.pos += n
        x = self.tokens[idx]
        if self.transpose:
            shift = torch.randint(-self.transpose, self.transpose + 1, (n,), generator=gen)
            shift = torch.maximum(shift, FIRST_NOTE_ON - self.lo[idx])
            shift = torch.minimum(shift, self.num_classes - 1 - self.hi[idx])
            x = torch.where(x >= FIRST_NOTE_ON, x + shift[:, None], x)
        return x
