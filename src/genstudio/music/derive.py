"""The other formats of a melody asset, made on first request and cached: MusicXML (sheet music) and
WAV (FluidSynth + a General MIDI soundfont, carrying a signed C2PA manifest that names the MIDI it
was rendered from). The MIDI file stays the asset of record; a cache file can always be rebuilt."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

from genstudio.config import Settings
from genstudio.provenance.stage import ProvenanceStage, Seal
from genstudio.storage.db import Asset
from genstudio.storage.files import atomic_write

from .encoding import Note
from .render import Melody, extract_melody, musicxml_bytes, read_midi_params, wav_bytes
from .theory import find_key, parse_key

FORMATS = {"wav": ("audio/wav", "wav"), "musicxml": ("application/vnd.recordare.musicxml+xml", "musicxml")}
# Renders of one file are serialised by one of a fixed set of locks (no per-file lock kept forever).
_locks = [threading.Lock() for _ in range(32)]


def _lock(name: str) -> threading.Lock:
    return _locks[hash(name) % len(_locks)]


def cache_dir(settings: Settings) -> Path:
    return settings.data_dir / "cache" / "derived"


def melody_of(midi: bytes, params: dict[str, Any] | None, max_bars: int) -> Melody:
    """The melody an asset holds: exactly what genstudio generated, or the melody line of an upload."""
    made = params if params and isinstance(params.get("notes"), list) else read_midi_params(midi)
    if made and isinstance(made.get("notes"), list):
        notes = [Note(int(a), int(b), int(c)) for a, b, c in made["notes"]]
        key = parse_key(made["key"]) if made.get("key") else (find_key(notes)[0] if notes else None)
        return Melody(
            notes,
            int(made.get("bars") or 2),
            float(made.get("tempo") or 120),
            int(made.get("program") or 0),
            key,
            **Melody.extra_from(made),
        )
    ex = extract_melody(midi, max_bars=max_bars)
    program = ex.tracks[ex.track].program if ex.track is not None else 0
    return Melody(ex.notes, ex.bars, ex.tempo, program, find_key(ex.notes)[0])


def render(
    fmt: str, midi: bytes, params: dict[str, Any] | None, settings: Settings, *, title: str, stage: ProvenanceStage
) -> bytes:
    """`fmt` ('wav' or 'musicxml') of a MIDI melody; the WAV goes through the provenance stage. ValueError
    for a MIDI without a melody; RenderUnavailable when FluidSynth or a soundfont is missing."""
    if fmt == "musicxml":
        return musicxml_bytes(melody_of(midi, params, settings.max_bars), title=title)
    if fmt == "wav":
        audio = wav_bytes(midi, max_seconds=settings.max_audio_seconds, tmp_dir=settings.data_dir / "tmp")
        info = {
            "rendered_from": {"mime": "audio/midi", "sha256": hashlib.sha256(midi).hexdigest()},
            "renderer": "fluidsynth + General MIDI soundfont",
            "generation": {k: v for k, v in (params or {}).items() if k != "notes"},
        }
        return stage.seal(audio, "audio/wav", Seal(title=title, ai_info=info))
    raise ValueError(f"format: unknown format {fmt!r}; use one of midi, {', '.join(FORMATS)}")


def derived_file(settings: Settings, asset: Asset, midi_path: Path, fmt: str, *, stage: ProvenanceStage) -> Path:
    """The cached `fmt` file of a MIDI asset, rendered (atomically) when first asked for."""
    if fmt not in FORMATS:
        raise ValueError(f"format: unknown format {fmt!r}; use one of midi, {', '.join(FORMATS)}")
    folder = cache_dir(settings)
    dest = folder / f"{asset.id}.{FORMATS[fmt][1]}"
    with _lock(str(dest)):
        if dest.is_file():
            return dest
        data = render(
            fmt, midi_path.read_bytes(), asset.params, settings, title=f"genstudio melody {asset.id[:12]}", stage=stage
        )
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(dest, data)
        return dest


def drop_derived(settings: Settings, asset_id: str) -> None:
    for _, ext in FORMATS.values():
        (cache_dir(settings) / f"{asset_id}.{ext}").unlink(missing_ok=True)
