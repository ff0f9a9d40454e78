"""`genstudio music sample|interpolate|vary|continue|harmonize`: the music studio on the command line, in this
process."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from genstudio.cli.common import progress_bar, settings_from, studio_context


def _instrument(value: str) -> int | str:
    return int(value) if value.strip().isdigit() else value


def _read_midi(path: str, field: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{field}: no such file {path}")
    data = p.read_bytes()
    if not data.startswith(b"MThd"):
        raise ValueError(f"{field}: {path} is not a MIDI file")
    return data


def cmd_music(args: argparse.Namespace) -> int:
    from genstudio.errors import LimitError
    from genstudio.music.derive import render
    from genstudio.music.params import (
        ContinueRequest,
        HarmonizeRequest,
        InterpolateRequest,
        SampleRequest,
        VaryRequest,
    )
    from genstudio.music.studio import MusicStudio

    settings = settings_from(args)
    if args.model:
        settings = settings.model_copy(update={"music_model": args.model})
    common: dict[str, Any] = {"temperature": args.temperature, "tempo": args.tempo, "seed": args.seed}
    if args.instrument is not None:
        common["instrument"] = _instrument(args.instrument)
    present = {k: v for k, v in common.items() if v is not None}
    req: Any
    if args.op == "sample":
        req = SampleRequest(
            **{
                k: v
                for k, v in dict(
                    n=args.n,
                    bars=args.bars,
                    key=args.key,
                    chords=args.chords,
                    density=args.density,
                    accompaniment=args.accompaniment,
                    **common,
                ).items()
                if v is not None
            }
        )
    elif args.op == "interpolate":
        _read_midi(args.start, "START")
        _read_midi(args.end, "END")
        req = InterpolateRequest(
            start="START",
            end="END",
            steps=args.steps,
            start_track=args.start_track,
            end_track=args.end_track,
            **({"temperature": 0.0} | present),
        )
        req = req.model_copy(update={"start": args.start, "end": args.end})  # paths, after validation
    elif args.op == "continue":
        _read_midi(args.source, "SOURCE")
        req = ContinueRequest(
            source="SOURCE", n=args.n, bars=args.bars, track=args.track, accompaniment=args.accompaniment, **present
        )
        req = req.model_copy(update={"source": args.source})
    elif args.op == "harmonize":
        _read_midi(args.source, "SOURCE")
        voices = [v.strip() for v in args.voices.split(",") if v.strip()]
        req = HarmonizeRequest(source="SOURCE", n=args.n, voices=voices, track=args.track, **present)
        req = req.model_copy(update={"source": args.source})
    else:
        _read_midi(args.source, "SOURCE")
        req = VaryRequest(source="SOURCE", n=args.n, similarity=args.similarity, track=args.track, **present)
        req = req.model_copy(update={"source": args.source})
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = sorted(set(formats) - {"midi", "musicxml", "wav"})
    if unknown:
        raise ValueError(f"--formats: unknown {', '.join(unknown)}; use midi, musicxml, wav")
    ctx = studio_context(settings)
    studio = MusicStudio(ctx)
    try:
        params = studio.resolve(req, args.op)
    except LimitError as exc:
        flag = {"start": "START", "end": "END", "source": "SOURCE"}.get(exc.field, f"--{exc.field.replace('_', '-')}")
        raise ValueError(f"{flag}: {exc.message}") from exc
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    with progress_bar(args, args.op) as job:
        outputs = ctx.stage(studio.run(params, job))
    files = []
    for i, o in enumerate(outputs):
        stem = out / f"{args.op}-{params.seed}-{i + 1:03d}"
        if "midi" in formats:
            stem.with_suffix(".mid").write_bytes(o.data)
            files.append(str(stem.with_suffix(".mid")))
        for fmt in ("musicxml", "wav"):
            if fmt in formats:
                dest = stem.with_suffix(f".{fmt}")
                dest.write_bytes(
                    render(fmt, o.data, o.params, settings, title=f"genstudio melody {stem.name}", stage=ctx.stage)
                )
                files.append(str(dest))
    summary = [{k: o.params[k] for k in ("key", "bars", "tempo", "instrument_name", "stats")} for o in outputs]
    for item in summary:  # a tempo read from a MIDI file's microseconds per beat: 180.00018 -> 180.0
        item["tempo"] = round(float(item["tempo"]), 2)
    print(json.dumps({"files": files, "seed": params.seed, "melodies": summary}, indent=2))
    return 0


def register(sub: Any) -> None:
    m = sub.add_parser("music", help="sample, compose, interpolate, vary, continue or harmonize melodies")
    ops = m.add_subparsers(dest="op", required=True)

    def common(p: argparse.ArgumentParser, temperature: float | None) -> None:
        p.add_argument("--temperature", type=float, default=temperature, help="0 = safest .. 2 = wildest")
        p.add_argument("--tempo", type=float, help="BPM (default 120, or the source's)")
        p.add_argument("--instrument", help="General MIDI program 0-127 or a name, e.g. violin")
        p.add_argument("--seed", type=int)
        p.add_argument("--formats", default="midi", help="comma-separated: midi,musicxml,wav")
        p.add_argument("--model", help="a music model folder (config.json + model.safetensors)")
        p.add_argument("-o", "--output", required=True, help="output folder")
        p.add_argument("--data-dir")
        p.add_argument("-q", "--quiet", action="store_true")
        p.set_defaults(func=cmd_music)

    s = ops.add_parser("sample", help="new melodies, optionally to a request (key, chords, density)")
    s.add_argument("--n", type=int, default=4)
    s.add_argument("--bars", type=int, default=2)
    s.add_argument("--key", help="e.g. 'D minor'")
    s.add_argument("--chords", help="one chord per bar, e.g. 'Am F C G'")
    s.add_argument("--density", type=float, help="-1 sparse .. +1 busy")
    s.add_argument("--accompaniment", action="store_true", help="add a chord part and a bass line")
    common(s, 0.5)

    i = ops.add_parser("interpolate", help="melodies between two MIDI files")
    i.add_argument("start")
    i.add_argument("end")
    i.add_argument("--steps", type=int, default=5)
    i.add_argument("--start-track", type=int)
    i.add_argument("--end-track", type=int)
    common(i, None)

    v = ops.add_parser("vary", help="variations of a MIDI melody")
    v.add_argument("source")
    v.add_argument("--n", type=int, default=4)
    v.add_argument("--similarity", type=float, default=0.7, help="1 = the same .. 0 = unrelated")
    v.add_argument("--track", type=int, help="the file's Nth track that holds notes, from 0 (default: the busiest)")
    common(v, 0.5)

    c = ops.add_parser("continue", help="more bars after a MIDI melody, in its key and style")
    c.add_argument("source")
    c.add_argument("--bars", type=int, default=8, help="new bars to write (even)")
    c.add_argument("--n", type=int, default=4)
    c.add_argument("--track", type=int, help="the file's Nth track that holds notes, from 0 (default: the busiest)")
    c.add_argument("--accompaniment", action="store_true", help="add a chord part and a bass line")
    common(c, 0.5)

    h = ops.add_parser("harmonize", help="alto, tenor and bass under a MIDI melody (Bach-chorale style)")
    h.add_argument("source")
    h.add_argument("--voices", default="alto,tenor,bass", help="comma-separated voices to write")
    h.add_argument("--n", type=int, default=1)
    h.add_argument("--track", type=int, help="the file's Nth track that holds notes, from 0 (default: the busiest)")
    common(h, 0.75)
