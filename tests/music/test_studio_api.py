"""The music studio end to end through the REST API, on the built-in melody model."""

from __future__ import annotations

import io
import json
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from genstudio.music.encoding import Note
from genstudio.music.theory import chord_fit, find_key, parse_key, parse_progression
from helpers import wait_job

pretty_midi = pytest.importorskip("pretty_midi")


@pytest.fixture
def mclient(tmp_path: Path) -> Iterator:
    from fastapi.testclient import TestClient

    from genstudio.api.app import create_app
    from genstudio.config import Settings

    s = Settings(data_dir=tmp_path / "data", executor="thread", max_bars=16)
    s.ensure_dirs()
    with TestClient(create_app(s)) as c:
        yield c


def run(client, path: str, body: dict) -> list[dict]:  # noqa: ANN001
    r = client.post(path, json=body)
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["job_id"], 120)
    assert job["status"] == "succeeded", job
    return [client.get(f"/api/assets/{a}/meta").json() for a in job["assets"]]


def notes_of(meta: dict) -> list[Note]:
    return [Note(*n) for n in meta["params"]["notes"]]


def midi_file(tracks: list[tuple[int, bool, list[tuple[int, float, float]]]], tempo: float = 100.0) -> bytes:
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    for program, drum, notes in tracks:
        inst = pretty_midi.Instrument(program=program, is_drum=drum)
        inst.notes = [pretty_midi.Note(velocity=90, pitch=p, start=s, end=e) for p, s, e in notes]
        pm.instruments.append(inst)
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


def upload(client, data: bytes, name: str = "in.mid"):  # noqa: ANN001, ANN201
    return client.post("/api/uploads", files={"file": (name, data, "audio/midi")})


def test_sample_writes_midi_with_tempo_instrument_and_parameters(mclient) -> None:  # noqa: ANN001
    metas = run(mclient, "/api/music/sample", {"n": 3, "bars": 4, "tempo": 90, "instrument": "violin", "seed": 11})
    assert len(metas) == 3
    for m in metas:
        p = m["params"]
        assert m["kind"] == "music" and m["mime"] == "audio/midi" and p["seed"] == 11
        assert p["bars"] == 4 and p["program"] == 40 and p["instrument_name"] == "Violin"
        data = mclient.get(m["url"]).content
        pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
        assert pm.get_tempo_changes()[1][0] == pytest.approx(90, abs=0.01)
        assert pm.instruments[0].program == 40
        step = 60 / 90 / 4
        got = sorted((n.pitch, round(n.start / step), round(n.end / step)) for n in pm.instruments[0].notes)
        assert got == sorted(tuple(n) for n in p["notes"])
        assert max(e for _, _, e in got) <= 4 * 16
        from genstudio.music.render import read_midi_params

        assert read_midi_params(data)["notes"] == p["notes"]  # the parameters travel inside the file
    assert len(mclient.get("/api/gallery?kind=music").json()["items"]) == 3


def test_the_202_answer_resolves_every_value(mclient) -> None:  # noqa: ANN001
    r = mclient.post("/api/music/sample", json={"n": 1, "key": "f# MAJOR", "instrument": "violin"})
    p = r.json()["params"]
    assert r.status_code == 202 and isinstance(p["seed"], int) and p["tempo"] == 120.0
    assert p["instrument"] == 40 and p["instrument_name"] == "Violin" and p["key"] == "F# major"
    job = wait_job(mclient, r.json()["job_id"], 60)
    meta = mclient.get(f"/api/assets/{job['assets'][0]}/meta").json()
    assert meta["params"]["key"] == "F# major" and meta["params"]["seed"] == p["seed"]
    assert any(m["kind"] == "music" and m["id"] == "builtin:melody-2bar" for m in mclient.get("/api/models").json())
    listed = mclient.get("/api/models?kind=music").json()
    assert [(m["kind"], m["format"]) for m in listed] == [
        ("music", "musicvae"),
        ("music", "musicvae-hierarchical"),
        ("music", "coconet"),
    ]
    assert all("error" not in m and m["has_model_card"] for m in listed), listed


def test_same_seed_same_melodies_and_different_seed_differs(mclient) -> None:  # noqa: ANN001
    body = {"n": 2, "bars": 2, "seed": 5}
    a = [m["params"]["notes"] for m in run(mclient, "/api/music/sample", body)]
    b = [m["params"]["notes"] for m in run(mclient, "/api/music/sample", body)]
    c = [m["params"]["notes"] for m in run(mclient, "/api/music/sample", {**body, "seed": 6})]
    assert a == b and a != c


def test_compose_to_a_key_and_a_chord_progression(mclient) -> None:  # noqa: ANN001
    key = parse_key("D minor")
    plain = run(mclient, "/api/music/sample", {"n": 12, "bars": 4, "key": "D minor", "seed": 3})
    for m in plain:
        assert find_key(notes_of(m), "minor")[0] == key  # transposed into the requested key
    in_key = np.mean([m["params"]["stats"]["in_key"] for m in plain])
    assert in_key >= 0.9
    chords = parse_progression("Dm Bb F C")
    follow = run(mclient, "/api/music/sample", {"n": 12, "bars": 4, "key": "D minor", "chords": "Dm Bb F C", "seed": 3})
    fit_plain = np.mean([chord_fit(notes_of(m), chords) for m in plain])
    fit_follow = np.mean([m["params"]["chord_fit"] for m in follow])
    assert fit_follow > fit_plain + 0.03, (fit_follow, fit_plain)


def test_density_moves_notes_per_bar(mclient) -> None:  # noqa: ANN001
    sparse = run(mclient, "/api/music/sample", {"n": 16, "bars": 2, "density": -1, "seed": 9})
    busy = run(mclient, "/api/music/sample", {"n": 16, "bars": 2, "density": 1, "seed": 9})
    assert np.mean([len(m["params"]["notes"]) for m in busy]) > 1.5 * np.mean(
        [len(m["params"]["notes"]) for m in sparse]
    )


def test_long_pieces_chain_segments(mclient) -> None:  # noqa: ANN001
    (m,) = run(mclient, "/api/music/sample", {"n": 1, "bars": 16, "seed": 2, "temperature": 0.3})
    notes = notes_of(m)
    assert m["params"]["bars"] == 16 and max(n.end for n in notes) <= 16 * 16
    assert len({n.start // 32 for n in notes}) >= 6  # most 2-bar segments hold notes


def _overlap(a: list[Note], b: list[Note]) -> float:
    sa, sb = {(n.pitch, n.start) for n in a}, {(n.pitch, n.start) for n in b}
    return len(sa & sb) / max(len(sa | sb), 1)


def test_vary_similarity_controls_closeness(mclient) -> None:  # noqa: ANN001
    (src,) = run(mclient, "/api/music/sample", {"n": 1, "bars": 4, "seed": 21, "temperature": 0.2})
    base = notes_of(src)
    closeness = []
    for similarity in (0.95, 0.5, 0.0):
        body = {"source": src["id"], "n": 6, "similarity": similarity, "seed": 1, "temperature": 0}
        metas = run(mclient, "/api/music/vary", body)
        closeness.append(np.mean([_overlap(base, notes_of(m)) for m in metas]))
        assert all(m["params"]["bars"] == 4 and m["params"]["program"] == src["params"]["program"] for m in metas)
    near, mid, away = closeness
    assert near > mid > away and near > away + 0.1, closeness


def test_interpolate_goes_from_start_to_end(mclient) -> None:  # noqa: ANN001
    a, b = run(mclient, "/api/music/sample", {"n": 2, "bars": 2, "seed": 33, "temperature": 0.2})
    path = run(mclient, "/api/music/interpolate", {"start": a["id"], "end": b["id"], "steps": 5})
    assert [m["params"]["t"] for m in path] == [0.0, 0.25, 0.5, 0.75, 1.0]
    na, nb = notes_of(a), notes_of(b)
    first, last = notes_of(path[0]), notes_of(path[-1])
    assert _overlap(first, na) > _overlap(first, nb)
    assert _overlap(last, nb) > _overlap(last, na)
    # Keys named along the path come from its ends (no relative-key flip between neighbours).
    ends = {a["params"]["key"], b["params"]["key"]}
    assert {m["params"]["key"] for m in path} <= ends, ([m["params"]["key"] for m in path], ends)


def test_uploaded_midi_melody_line_and_what_was_dropped(mclient) -> None:  # noqa: ANN001
    beat = 0.6  # 100 BPM
    melody = [(72 + (i % 5), i * beat, (i + 1) * beat) for i in range(8)]
    chord = [(60, 0.0, 2 * beat), (64, 0.0, 2 * beat), (67, 0.0, 2 * beat), (76, 0.0, 2 * beat)]
    data = midi_file([(0, False, melody + chord), (33, False, [(40, 0.0, 4 * beat)]), (0, True, [(36, 0.0, 0.1)])])
    r = upload(mclient, data)
    assert r.status_code == 201, r.text
    info = r.json()["melody"]
    assert info["track"] == 0 and info["tracks"] == 3
    assert info["dropped"]["chord_notes"] >= 3 and info["dropped"]["other_tracks_notes"] == 2
    assert "dropped" in info["summary"]
    tracks = mclient.get(f"/api/music/tracks/{r.json()['asset_id']}").json()
    assert [t["is_drum"] for t in tracks["tracks"]] == [False, False, True] and tracks["tracks"][0]["polyphonic"]
    metas = run(mclient, "/api/music/vary", {"source": r.json()["asset_id"], "n": 2, "similarity": 0.9, "seed": 4})
    assert metas[0]["params"]["tempo"] == pytest.approx(100, abs=0.1)
    bad = mclient.post("/api/music/vary", json={"source": r.json()["asset_id"], "track": 2})
    assert bad.status_code == 422 and "drum" in bad.text and bad.json()["detail"][0]["loc"] == ["body", "track"]
    bad = mclient.post("/api/music/vary", json={"source": r.json()["asset_id"], "track": 9})
    assert bad.status_code == 422 and "track 9" in bad.text
    assert mclient.get("/api/music/tracks/nope").status_code == 404


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"not midi at all", 415, "unsupported"),
        (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x00\x04\x00\xff\x2f\x00", 422, "no tracks"),
        (b"MThd\x00\x00\x00\x06\x00\x01", 422, "MIDI"),
    ],
)
def test_bad_midi_uploads_are_refused_and_nothing_is_written(mclient, data: bytes, status: int, words: str) -> None:  # noqa: ANN001
    r = upload(mclient, data)
    assert r.status_code == status and words in r.text, r.text
    assert mclient.get("/api/gallery").json()["items"] == []


def test_drums_only_midi_has_no_melody(mclient) -> None:  # noqa: ANN001
    r = upload(mclient, midi_file([(0, True, [(36, 0.0, 0.1), (38, 0.5, 0.6)])]))
    assert r.status_code == 422 and "melodic" in r.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"n": 1000}, "n"),
        ({"bars": 10000}, "bars"),
        ({"bars": 3}, "bars"),
        ({"tempo": 5000}, "tempo"),
        ({"tempo": 0}, "tempo"),
        ({"key": "H major"}, "key"),
        ({"key": "C dorian"}, "key"),
        ({"chords": "C Xm7"}, "chords"),
        ({"instrument": "kazoo-9000"}, "instrument"),
        ({"instrument": 300}, "instrument"),
        ({"temperature": -1}, "temperature"),
        ({"density": 4}, "density"),
    ],
)
def test_bad_requests_name_the_field(mclient, body: dict, field: str) -> None:  # noqa: ANN001
    r = mclient.post("/api/music/sample", json=body)
    assert r.status_code == 422
    assert field in json.dumps(r.json()["detail"])


def test_interpolate_refuses_unknown_or_non_midi_assets(mclient) -> None:  # noqa: ANN001
    r = mclient.post("/api/music/interpolate", json={"start": "nope", "end": "nope2"})
    assert r.status_code == 422 and "start" in r.text
    png = mclient.post("/api/uploads", files={"file": ("a.png", _png(), "image/png")}).json()["asset_id"]
    r = mclient.post("/api/music/vary", json={"source": png})
    assert r.status_code == 422 and "not a MIDI" in r.text


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


def test_musicxml_and_wav_formats_with_provenance(mclient) -> None:  # noqa: ANN001
    (m,) = run(mclient, "/api/music/sample", {"n": 1, "bars": 2, "tempo": 120, "key": "G major", "seed": 8})
    xml = mclient.get(m["url"] + "?format=musicxml")
    assert xml.status_code == 200 and "musicxml" in xml.headers["content-type"]
    from music21 import converter

    score = converter.parseData(xml.content.decode(), format="musicxml")
    pitches = [n.pitch.midi for n in score.recurse().notes]
    assert pitches == [n[0] for n in sorted(m["params"]["notes"], key=lambda n: n[1])]
    assert score.recurse().getElementsByClass("KeySignature")[0].sharps == 1

    wav = mclient.get(m["url"] + "?format=wav")
    if wav.status_code == 503:
        pytest.skip(wav.json()["detail"])
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(wav.content)) as w:
        seconds = w.getnframes() / w.getframerate()
        audio = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    assert 4.0 <= seconds <= 8.0  # 2 bars at 120 BPM = 4 s, plus FluidSynth's release tail
    assert np.abs(audio).max() > 1000  # not silence
    report = mclient.post("/api/verify", files={"file": ("m.wav", wav.content, "audio/wav")}).json()
    assert report["manifest"]["found"] and report["manifest"]["valid"] and report["ai_generated"]
    assert mclient.get(m["url"] + "?format=wav").content == wav.content  # cached, not re-rendered

    midi = mclient.get(m["url"]).content
    report = mclient.post("/api/verify", files={"file": ("m.mid", midi, "audio/midi")}).json()
    assert report["format"] == "midi" and report["midi"]["declared_ai_generated"]
    # The MIDI is signed at job time by the provenance stage (C2PA has no MIDI binding: a signature track).
    assert report["manifest"]["found"] and report["manifest"]["valid"] and report["ai_generated"], report
    assert report["manifest"]["method"].startswith("genstudio-midi-signature")
    # One changed note byte breaks the signature.
    pos = midi.index(b"\x90") + 1
    tampered = midi[:pos] + bytes([(midi[pos] + 1) % 128]) + midi[pos + 1 :]
    bad = mclient.post("/api/verify", files={"file": ("t.mid", tampered, "audio/midi")}).json()["manifest"]
    assert bad["found"] and not bad["valid"] and "dataHash" in " ".join(bad["errors"]), bad
    assert report["midi"]["generation"]["key"] == "G major" and report["midi"]["generation"]["seed"] == 8

    png = mclient.post("/api/uploads", files={"file": ("a.png", _png(), "image/png")}).json()["asset_id"]
    assert mclient.get(f"/api/assets/{png}?format=wav").status_code == 422
    assert mclient.get(m["url"] + "?format=mp3").status_code == 422
