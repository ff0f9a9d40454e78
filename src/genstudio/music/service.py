"""The music studio: sample, compose to a request, interpolate and vary melodies with the MusicVAE.

How each control acts on the model (also in docs/music.md):
- bars: the model writes 2 bars; longer pieces chain 2-bar codes along a smooth latent path (a slerp
  between two random codes, one point per 2-bar segment), so neighbouring segments are related.
- temperature: the softmax temperature of the decoder's sampling (0 = most likely token each step).
- key / mode: each melody is transposed from its own best-fitting key of that mode (Krumhansl-Kessler
  profiles) into the requested key; with a key, chords or density requested, four candidates are
  sampled per melody and the one that fits the request best is kept (mode clarity, chord tones on
  beats, notes per bar).
- density: a latent attribute vector (mean code of busy windows minus mean code of sparse ones, from
  the training data, shipped beside the weights) is added to z, scaled by the request; candidates are
  then ranked by how close their notes per bar come to the request.
- chords: one chord per bar (repeating); candidates are ranked by the share of beat-weighted time
  spent on chord tones.
- tempo and instrument: written into the MIDI (they do not change the notes).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genstudio.config import Settings
from genstudio.jobs.base import JobFailed, OutputFile

from .accompany import accompaniment, chord_marks, pick_chords
from .encoding import Note
from .metrics import in_key_counts
from .model import MelodyVAE, slerp
from .render import Melody, Part, instrument_program, midi_bytes, windows
from .theory import (
    Key,
    chord_fit,
    find_key,
    fit_range,
    key_of_progression,
    key_scores,
    parse_key,
    parse_progression,
    to_key,
    transpose,
)

log = logging.getLogger(__name__)


def path_key(notes: Sequence[Note], ends: Sequence[Key | None], t: float) -> Key:
    """The key of a step `t` (0..1) of an interpolation: of the two ends' keys, the one that fits the step's
    notes better (the nearer end when they fit alike); the step's own best key when the ends have none."""
    known = [k for k in ends if k is not None]
    if not known:
        return find_key(notes)[0]
    scores = {k.name: r for r, k in key_scores(notes)}
    nearer = ends[0] if t <= 0.5 and ends[0] is not None else known[-1]
    best = max(known, key=lambda k: scores.get(k.name, -1.0))
    return nearer if abs(scores.get(nearer.name, -1.0) - scores.get(best.name, -1.0)) < 0.05 else best


BUILTIN_DIR = Path(__file__).resolve().parent.parent / "builtin_models"
WINDOW_BARS = 2
CANDIDATES = 4  # per melody, when the request asks for something the model cannot be told directly
BASE_NOTES_PER_BAR = 8.0  # density 0; the public-domain training windows average ~9 notes a bar
Progress = Callable[[float], None]


def model_dir(name: str) -> Path:
    """`builtin:NAME` or a folder holding config.json + model.safetensors."""
    if name.startswith("builtin:"):
        folder = BUILTIN_DIR / name.removeprefix("builtin:")
    else:
        folder = Path(name).expanduser()
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"music model {name!r}: no config.json + model.safetensors in {folder}")
    return folder


def music_models_info(settings: Settings) -> list[dict[str, Any]]:
    """The music studio's models as GET /api/models lists them: the melody model, the long-melody model
    (when configured) and the harmony model, each with what it is for."""
    out = [music_model_info(settings)]
    if settings.music_long_model:
        out.append(
            music_model_info(
                settings, settings.music_long_model, "musicvae-hierarchical", "sample (> 2 bars), continue"
            )
        )
    out.append(music_model_info(settings, settings.harmony_model, "coconet", "harmonize"))
    return out


def music_model_info(
    settings: Settings, name: str | None = None, fmt: str = "musicvae", used_for: str = "sample, interpolate, vary"
) -> dict[str, Any]:
    """One music model as GET /api/models lists it (default: the melody model)."""
    name = name or settings.music_model
    public_id = name if name.startswith("builtin:") else f"folder:{Path(name).name}"  # never a server path
    info: dict[str, Any] = {
        "id": public_id,
        "name": public_id,
        "kind": "music",
        "default": True,
        "format": fmt,
        "used_for": used_for,
    }
    try:
        folder = model_dir(name)
        cfg = json.loads((folder / "config.json").read_text())
        info.update(
            builtin=name.startswith("builtin:"),
            description=cfg.get("description"),
            z_size=cfg.get("z_size"),
            steps=cfg.get("max_seq_len"),
            has_model_card=(folder / "MODEL_CARD.md").is_file(),
        )
    except (FileNotFoundError, ValueError):
        setting = {"musicvae": "GENSTUDIO_MUSIC_MODEL", "coconet": "GENSTUDIO_HARMONY_MODEL"}.get(
            fmt, "GENSTUDIO_MUSIC_LONG_MODEL"
        )
        info["error"] = f"the model folder has no config.json + model.safetensors ({setting})"
    return info


def melody_stats(notes: Sequence[Note]) -> dict[str, Any]:
    in_key, total = in_key_counts(notes)
    pitches = [n.pitch for n in notes]
    return {
        "notes": total,
        "in_key": round(in_key / total, 4) if total else 0.0,
        "range": (max(pitches) - min(pitches)) if pitches else 0,
    }


class MelodyEngine:
    """Loads the melody model once (lazily) and turns job params into melodies. Thread-safe."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._vae: MelodyVAE | None = None
        self._attributes: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._long: Any = None  # LongMelodyVAE, False when none is configured or found
        self._coconet: Any = None

    @property
    def vae(self) -> MelodyVAE:
        with self._lock:
            if self._vae is None:
                folder = model_dir(self.settings.music_model)
                self._vae = MelodyVAE.from_pretrained(folder)
                attrs = folder / "attributes.json"
                if attrs.is_file():
                    self._attributes = json.loads(attrs.read_text())
                log.info("music model loaded from %s", folder)
            return self._vae

    @property
    def model_id(self) -> str:
        return self.settings.music_model

    @property
    def long_vae(self) -> Any:
        """The hierarchical long-melody model (LongMelodyVAE), or None: then longer pieces chain 2-bar codes."""
        from .hierarchical import LongMelodyVAE

        with self._lock:
            if self._long is None:
                self._long = False
                if self.settings.music_long_model:
                    try:
                        folder = model_dir(self.settings.music_long_model)
                    except FileNotFoundError:
                        log.warning("no long-melody model at %s: chaining 2-bar codes", self.settings.music_long_model)
                    else:
                        self._long = LongMelodyVAE.from_pretrained(folder)
                        log.info("long-melody model loaded from %s", folder)
            return self._long or None

    @property
    def coconet(self) -> Any:
        from .coconet import Coconet

        with self._lock:
            if self._coconet is None:
                try:
                    folder = model_dir(self.settings.harmony_model)
                except FileNotFoundError as exc:
                    raise JobFailed(f"no harmony model: {exc} (GENSTUDIO_HARMONY_MODEL)") from None
                self._coconet = Coconet.from_pretrained(folder)
            return self._coconet

    def attribute(self, name: str) -> torch.Tensor | None:
        _ = self.vae
        vec = self._attributes.get(name, {}).get("vector")
        return torch.tensor(vec, dtype=torch.float32) if vec else None

    def run(self, params: dict[str, Any], progress: Progress | None = None) -> list[OutputFile]:
        report = progress or (lambda _f: None)
        op = params.get("op")
        if op == "sample":
            melodies = self.sample(params, report)
        elif op == "interpolate":
            melodies = self.interpolate(params, report)
        elif op == "vary":
            melodies = self.vary(params, report)
        elif op == "continue":
            melodies = self.continue_(params, report)
        elif op == "harmonize":
            melodies = self.harmonize(params, report)
        else:
            raise JobFailed(f"unknown music operation {op!r}")
        outputs = []
        for i, m in enumerate(melodies):
            m.params = {
                **{k: v for k, v in params.items() if not k.startswith("_")},
                "index": i,
                "model": self.model_id,
                "bars": m.bars,
                "tempo": m.tempo,
                "program": m.program,
                "instrument_name": instrument_program(m.program)[1],
                "key": m.key.name if m.key else None,
                "notes": m.notes_json(),
                "stats": melody_stats(m.notes),
                **m.extra_json(),
                **m.params,
            }
            outputs.append(
                OutputFile(
                    data=midi_bytes(m), mime="audio/midi", kind="music", seed=params.get("seed"), params=m.params
                )
            )
        report(1.0)
        return outputs

    # Operations ----------------------------------------------------------------------------------------

    def _decode(
        self, z: torch.Tensor, temperature: float, gen: torch.Generator, report: Progress, lo: float, hi: float
    ) -> list[list[Note]]:
        """Decode z [N, Z] in chunks (progress between chunks; a cancel lands within one chunk)."""
        vae = self.vae
        out: list[list[Note]] = []
        chunk = 256
        for i in range(0, len(z), chunk):
            tokens = vae.model.decode_tokens(z[i : i + chunk], temperature, gen if temperature > 0 else None)
            out.extend(vae.melodies(tokens))
            report(lo + (hi - lo) * min(1.0, (i + chunk) / len(z)))
        return out

    def _long_decode(
        self, codes: torch.Tensor, temperature: float, gen: torch.Generator, report: Progress, lo: float, hi: float
    ) -> list[list[Note]]:
        long = self.long_vae
        out: list[list[Note]] = []
        chunk = 32
        for i in range(0, len(codes), chunk):
            out.extend(long.decode(codes[i : i + chunk], temperature, gen if temperature > 0 else None))
            report(lo + (hi - lo) * min(1.0, (i + chunk) / len(codes)))
        return out

    def sample(self, p: dict[str, Any], report: Progress) -> list[Melody]:
        vae = self.vae
        n, bars, temperature = int(p["n"]), int(p["bars"]), float(p["temperature"])
        segs = bars // WINDOW_BARS
        chords = parse_progression(p["chords"]) if p.get("chords") else None
        target: Key | None = parse_key(p["key"]) if p.get("key") else (key_of_progression(chords) if chords else None)
        density = p.get("density")
        ranked = target is not None or chords is not None or density is not None
        c = CANDIDATES if ranked else 1
        gen = torch.Generator().manual_seed(int(p["seed"]))
        vec = self.attribute("density") if density is not None else None
        shift = float(density) * float(self._attributes["density"].get("scale", 1.0)) * vec if vec is not None else 0.0
        long = self.long_vae if segs > 1 else None
        if long is not None:
            # The conductor plans the whole piece; its segment codes live in the 2-bar model's space, so the
            # density vector applies to them as it does to the 2-bar codes.
            codes = long.long_codes(n * c, segs, gen) + shift
            report(0.05)
            pieces = self._long_decode(codes, temperature, gen, report, 0.05, 0.9)
            method = "hierarchical"
        else:
            zs = vae.model.config.z_size
            a = torch.randn(n * c, zs, generator=gen)
            b = torch.randn(n * c, zs, generator=gen)
            ts = [j / (segs - 1) if segs > 1 else 0.0 for j in range(segs)]
            z = torch.stack([slerp(a, b, t) for t in ts], dim=1) + shift  # [n*c, segs, Z]
            report(0.05)
            parts = self._decode(z.reshape(-1, zs), temperature, gen, report, 0.05, 0.9)
            pieces = [join_segments(parts[i * segs : (i + 1) * segs], target) for i in range(n * c)]
            method = "chained" if segs > 1 else "2-bar"
        tempo = float(p.get("tempo") or 120.0)
        program = instrument_program(p["instrument"])[0] if p.get("instrument") is not None else 0
        out = []
        for i in range(n):
            best: tuple[float, list[Note], dict[str, Any]] | None = None
            for j in range(c):
                notes = pieces[i * c + j]
                info: dict[str, Any] = {}
                if target is not None and notes:
                    notes, found, moved = to_key(notes, target)
                    info["transposed_from"] = found.name
                    info["transposed_by"] = moved
                elif notes:
                    notes = fit_range(notes)
                score = self._score(notes, bars, target, chords, density)
                info["fit"] = round(score, 4)
                if best is None or score > best[0]:
                    best = (score, notes, info)
            assert best is not None
            _, notes, info = best
            key = target or (find_key(notes)[0] if notes else None)
            if chords is not None:
                info["chord_fit"] = round(chord_fit(notes, chords), 4)
            m = Melody(notes, bars, tempo, program, key, {**info, "candidates": c, "method": method})
            out.append(with_backing(m, chords, bool(p.get("accompaniment"))))
        report(0.95)
        return out

    @staticmethod
    def _score(notes: list[Note], bars: int, target: Key | None, chords: Any, density: float | None) -> float:
        if not notes:
            return -10.0
        score = 0.0
        if target is not None:
            scores = {k: r for r, k in key_scores(notes)}
            score += scores.get(target, 0.0)
        if chords is not None:
            score += 2.0 * chord_fit(notes, chords)
        if density is not None:
            want = BASE_NOTES_PER_BAR * 2.0 ** float(density)
            score -= abs(len(notes) / bars - want) / want
        return score

    def _prepare_sources(self, p: dict[str, Any], names: Sequence[str]) -> list[tuple[list[list[Note]], int]]:
        """The windows of each source melody stored in the job params at submit time."""
        out = []
        for name in names:
            src = p[f"_{name}"]
            notes = [Note(*n) for n in src["notes"]]
            out.append((windows(notes, int(src["bars"])), int(src["bars"])))
        return out

    def interpolate(self, p: dict[str, Any], report: Progress) -> list[Melody]:
        vae = self.vae
        (wa, bars_a), (wb, bars_b) = self._prepare_sources(p, ["start", "end"])
        segs = min(len(wa), len(wb))
        steps, temperature = int(p["steps"]), float(p["temperature"])
        mu = vae.encode([*wa[:segs], *wb[:segs]])
        za, zb = mu[:segs], mu[segs:]
        z = torch.stack([slerp(za, zb, i / (steps - 1)) for i in range(steps)])  # [steps, segs, Z]
        report(0.1)
        gen = torch.Generator().manual_seed(int(p["seed"]))
        parts = self._decode(z.reshape(-1, z.shape[-1]), temperature, gen, report, 0.1, 0.9)
        src = p["_start"]
        tempo = float(p.get("tempo") or src.get("tempo") or 120.0)
        program = instrument_program(p["instrument"])[0] if p.get("instrument") is not None else src.get("program", 0)
        # One vocabulary of keys along the path: each step is named by whichever end's key fits it better,
        # not by its own best guess (which flips between relative keys, D minor then F major, on the same notes).
        ends = [self._source_key(p[f"_{name}"]) for name in ("start", "end")]
        out = []
        for i in range(steps):
            notes = [
                Note(nt.pitch, nt.start + j * 32, nt.end + j * 32) for j in range(segs) for nt in parts[i * segs + j]
            ]
            key = path_key(notes, ends, i / (steps - 1)) if notes else None
            out.append(Melody(notes, segs * WINDOW_BARS, tempo, program, key, {"t": round(i / (steps - 1), 4)}))
        return out

    @staticmethod
    def _source_key(src: dict[str, Any]) -> Key | None:
        if src.get("key"):
            try:
                return parse_key(src["key"])
            except ValueError:
                pass
        notes = [Note(*n) for n in src.get("notes") or []]
        return find_key(notes)[0] if notes else None

    def continue_(self, p: dict[str, Any], report: Progress) -> list[Melody]:
        """The source, then `bars` new bars: the long-melody model's conductor is fitted to the codes of the
        source's last (up to 8) bars and plans what follows (chained 2-bar codes without that model: the
        last segment's code walked on towards random codes)."""
        src = p["_source"]
        notes = [Note(*nt) for nt in src["notes"]]
        given_bars = int(src["bars"])
        if given_bars < WINDOW_BARS or not notes:
            raise JobFailed("the source needs at least 2 bars with notes to continue")
        n, new_bars, temperature = int(p["n"]), int(p["bars"]), float(p["temperature"])
        new_segs = new_bars // WINDOW_BARS
        ctx_segs = min(4, given_bars // WINDOW_BARS)
        ctx_start = (given_bars - ctx_segs * WINDOW_BARS) * 16
        context = [
            Note(nt.pitch, max(nt.start, ctx_start) - ctx_start, nt.end - ctx_start)
            for nt in notes
            if nt.end > ctx_start
        ]
        gen = torch.Generator().manual_seed(int(p["seed"]))
        long = self.long_vae
        if long is not None:
            codes = long.continue_codes(context, ctx_segs, new_segs, n, gen)
            report(0.3)
            pieces = self._long_decode(codes, temperature, gen, report, 0.3, 0.9)
            method = "hierarchical"
        else:
            vae = self.vae
            last = vae.encode(windows(context, ctx_segs * WINDOW_BARS)[-1:])  # [1, Z]
            far = torch.randn(n, last.shape[-1], generator=gen)
            z = torch.stack([slerp(last[0].expand(n, -1), far, (j + 1) / (new_segs + 1)) for j in range(new_segs)], 1)
            parts = self._decode(z.reshape(-1, z.shape[-1]), temperature, gen, report, 0.1, 0.9)
            pieces = [join_segments(parts[i * new_segs : (i + 1) * new_segs], None) for i in range(n)]
            method = "chained"
        tempo = float(p.get("tempo") or src.get("tempo") or 120.0)
        program = instrument_program(p["instrument"])[0] if p.get("instrument") is not None else src.get("program", 0)
        key = self._source_key(src)
        offset = given_bars * 16
        out = []
        for new in pieces:
            keeps = bool(new) and key is not None and find_key(new)[0].scale == key.scale
            shift = 0
            if new and key is not None and not keeps:  # the new bars drifted: moved into the source's key
                found, _ = find_key(new, key.mode)
                shift = (key.tonic - found.tonic) % 12
                shift = shift - 12 if shift > 6 else shift
                new = transpose(new, shift)
            if new:  # joined near the source's last note
                gap = notes[-1].pitch - new[0].pitch
                new = fold_range(transpose(new, 12 * round(gap / 12)))
            whole = list(notes) + [Note(nt.pitch, nt.start + offset, nt.end + offset) for nt in new]
            info = {
                "given_bars": given_bars,
                "new_bars": new_bars,
                "method": method,
                "new_stats": melody_stats(new),
                # The model's own new bars in the source's key signature (relative major and minor count as
                # one); when not, `transposed_by` says how far they were moved into it.
                "keeps_key": keeps,
                "transposed_by": shift,
            }
            m = Melody(whole, given_bars + new_bars, tempo, program, key, info)
            out.append(with_backing(m, None, bool(p.get("accompaniment"))))
        return out

    def harmonize(self, p: dict[str, Any], report: Progress) -> list[Melody]:
        """Coconet writes the asked-for voices around the source melody (music/harmonizer.py)."""
        from .harmonizer import harmonize

        src = p["_source"]
        notes = [Note(*nt) for nt in src["notes"]]
        bars = int(src["bars"])
        if not notes:
            raise JobFailed("the source has no notes to harmonize")
        voices = list(p.get("voices") or ["alto", "tenor", "bass"])
        gen = torch.Generator().manual_seed(int(p["seed"]))
        model = self.coconet
        report(0.05)
        results = []
        for i in range(int(p["n"])):
            results += harmonize(
                model, notes, bars * 16, voices, n=1, temperature=float(p["temperature"]), generator=gen
            )
            report(0.05 + 0.9 * (i + 1) / int(p["n"]))
        tempo = float(p.get("tempo") or src.get("tempo") or 120.0)
        program = instrument_program(p["instrument"])[0] if p.get("instrument") is not None else src.get("program", 0)
        key = self._source_key(src)
        out = []
        for h in results:
            parts = [Part(v, h.parts[v], program, 76) for v in ("soprano", "alto", "tenor", "bass") if v in h.parts]
            info = {"voices": voices, "melody_voice": h.melody_voice, "octave_shift": h.octave_shift}
            out.append(Melody(notes, bars, tempo, program, key, info, parts=parts, name=h.melody_voice))
        return out

    def vary(self, p: dict[str, Any], report: Progress) -> list[Melody]:
        vae = self.vae
        ((ws, bars),) = self._prepare_sources(p, ["source"])
        n, similarity, temperature = int(p["n"]), float(p["similarity"]), float(p["temperature"])
        gen = torch.Generator().manual_seed(int(p["seed"]))
        mu = vae.encode(ws)  # [segs, Z]
        eps = torch.randn(n, len(ws), mu.shape[-1], generator=gen)
        # similarity 1: the source's own code; 0: a code from the prior, unrelated to the source.
        z = torch.stack([slerp(mu, eps[i], 1.0 - similarity) for i in range(n)])
        report(0.1)
        parts = self._decode(z.reshape(-1, mu.shape[-1]), temperature, gen, report, 0.1, 0.9)
        src = p["_source"]
        tempo = float(p.get("tempo") or src.get("tempo") or 120.0)
        program = instrument_program(p["instrument"])[0] if p.get("instrument") is not None else src.get("program", 0)
        segs = len(ws)
        out = []
        for i in range(n):
            notes = [
                Note(nt.pitch, nt.start + j * 32, nt.end + j * 32) for j in range(segs) for nt in parts[i * segs + j]
            ]
            key = find_key(notes)[0] if notes else None
            out.append(Melody(notes, segs * WINDOW_BARS, tempo, program, key, {}))
        return out


def with_backing(m: Melody, chords: Sequence[Any] | None, backing: bool) -> Melody:
    """Chord symbols of the progression (given, or picked to fit when a backing is asked for) written into
    the piece, and with `backing` a chord part and a bass line (rule-based: music/accompany.py)."""
    if backing and chords is None and m.notes and m.key is not None:
        chords = pick_chords(m.notes, m.bars, m.key)
        m.params["chords_picked"] = " ".join(ch.symbol for ch in chords)
    if chords:
        m.chords = chord_marks(chords, m.bars)
        if backing and m.key is not None:
            m.parts = accompaniment(chords, m.bars, m.key, m.notes)
    return m


def join_segments(segments: Sequence[Sequence[Note]], target: Key | None) -> list[Note]:
    """Concatenate 2-bar segments decoded one by one into one piece in one key.

    Each segment after the first is transposed from its own best-fitting key (of the piece's mode)
    into the key of the piece (the request's, else the first segment's), then moved by whole octaves
    so it starts near where the previous segment ended: no key change or wild leap at the joins."""
    step = WINDOW_BARS * 16
    out: list[Note] = []
    key = target
    for j, seg in enumerate(segments):
        notes = list(seg)
        if not notes:
            continue
        if key is None:
            key = find_key(notes)[0]
        elif len(segments) > 1:
            found, _ = find_key(notes, key.mode)
            shift = (key.tonic - found.tonic) % 12
            notes = transpose(notes, shift - 12 if shift > 6 else shift)
        if out:
            gap = out[-1].pitch - notes[0].pitch
            notes = transpose(notes, 12 * round(gap / 12))
        out.extend(Note(nt.pitch, nt.start + j * step, nt.end + j * step) for nt in notes)
    return fold_range(out)


def fold_range(notes: Sequence[Note], lo: int = 21, hi: int = 108) -> list[Note]:
    """The piece moved by whole octaves into [lo, hi]; a piece wider than that (only a wild, untrained
    model writes one) has its outlying notes folded in by octaves, so a MIDI file can always hold it."""
    out = list(notes)
    while out and min(n.pitch for n in out) < lo and max(n.pitch for n in out) + 12 <= hi:
        out = transpose(out, 12)
    while out and max(n.pitch for n in out) > hi and min(n.pitch for n in out) - 12 >= lo:
        out = transpose(out, -12)
    return [
        Note(n.pitch + 12 * max(0, -(-(lo - n.pitch) // 12)) - 12 * max(0, -(-(n.pitch - hi) // 12)), n.start, n.end)
        for n in out
    ]


def new_seed(seed: int | None) -> int:
    return seed if seed is not None else secrets.randbelow(2**32)


def source_from_notes(
    notes: Sequence[Note],
    bars: int,
    tempo: float | None,
    program: int | None,
    *,
    origin: str,
    dropped: dict[str, int] | None = None,
    track: int | None = None,
) -> dict[str, Any]:
    """What a job row keeps of a source melody (so workers need no access to the source file)."""
    return {
        "origin": origin,
        "bars": bars,
        "tempo": tempo,
        "program": program,
        "track": track,
        "dropped": dropped or {},
        "notes": [[n.pitch, n.start, n.end] for n in notes],
    }


def stats_table(melodies: Sequence[Sequence[Note]]) -> dict[str, float]:
    """Pooled in-key share, mean notes and mean range over melodies (for docs and tests)."""
    counts = [in_key_counts(m) for m in melodies]
    notes = sum(t for _, t in counts)
    ranges = [max(n.pitch for n in m) - min(n.pitch for n in m) for m in melodies if m]
    return {
        "in_key": sum(k for k, _ in counts) / notes if notes else 0.0,
        "notes": float(np.mean([len(m) for m in melodies])) if melodies else 0.0,
        "range": float(np.mean(ranges)) if ranges else 0.0,
    }


def source_from_midi(data: bytes, *, track: int | None, settings: Settings, origin: str) -> dict[str, Any]:
    """The melody line of MIDI bytes (a user's file or an earlier result) as a job's source.

    ValueError (with a message fit for the user) when there is no usable melody."""
    from .render import extract_melody, read_midi_params

    made = read_midi_params(data)
    if made and track is None and isinstance(made.get("notes"), list) and made.get("bars"):
        notes = [Note(int(a), int(b), int(c)) for a, b, c in made["notes"]]
        bars = min(int(made["bars"]), settings.max_bars)
        return source_from_notes(notes, bars, made.get("tempo"), made.get("program"), origin=origin)
    ex = extract_melody(data, track=track, max_bars=settings.max_bars)
    program = ex.tracks[ex.track].program if ex.track is not None else 0
    return source_from_notes(ex.notes, ex.bars, ex.tempo, program, origin=origin, dropped=ex.dropped, track=ex.track)
