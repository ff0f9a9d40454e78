"""Continue, Harmonize, chord symbols and the backing: the models' interfaces on tiny random weights, and the
studio end to end through the REST API with those models configured."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from genstudio.music.accompany import accompaniment, chord_marks, pick_chords
from genstudio.music.coconet import CONFIGS, Coconet, CoconetConfig, gibbs, out_of_range, parallel_perfects, to_class
from genstudio.music.encoding import Note
from genstudio.music.hierarchical import HierarchicalMusicVAE, HierConfig, LongMelodyVAE
from genstudio.music.model import CONFIG_MAP, MusicVAE
from genstudio.music.theory import parse_key, parse_progression
from helpers import wait_job

pretty_midi = pytest.importorskip("pretty_midi")


def tiny_long(seed: int = 0) -> HierarchicalMusicVAE:
    torch.manual_seed(seed)
    cfg = HierConfig(bar=CONFIG_MAP["cat-mel_2bar_tiny"], segments=8, z_size=16, top_enc_size=16, conductor_size=16)
    return HierarchicalMusicVAE(cfg).eval()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("music-models")
    torch.manual_seed(0)
    MusicVAE(CONFIG_MAP["cat-mel_2bar_tiny"]).save_pretrained(root / "bar")
    tiny_long().save_pretrained(root / "long")
    torch.manual_seed(0)
    Coconet(CONFIGS["tiny"]).eval().save_pretrained(root / "coconet")
    return {"bar": root / "bar", "long": root / "long", "coconet": root / "coconet"}


@pytest.fixture
def mclient(tmp_path: Path, models: dict[str, Path]) -> Iterator:
    from fastapi.testclient import TestClient

    from genstudio.api.app import create_app
    from genstudio.config import Settings

    s = Settings(
        data_dir=tmp_path / "data",
        executor="thread",
        max_bars=32,
        music_model=str(models["bar"]),
        music_long_model=str(models["long"]),
        harmony_model=str(models["coconet"]),
    )
    s.ensure_dirs()
    with TestClient(create_app(s)) as c:
        yield c


def run(client, path: str, body: dict) -> list[dict]:  # noqa: ANN001
    r = client.post(path, json=body)
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["job_id"], 120)
    assert job["status"] == "succeeded", job.get("error")
    return [client.get(f"/api/assets/{a}/meta").json() for a in job["assets"]]


SOURCE = [(60, 0.0, 0.5), (64, 0.5, 1.0), (67, 1.0, 1.5), (72, 1.5, 2.0)] * 4  # at 120 BPM: 8 notes a bar


def upload_melody(client, notes=SOURCE, tempo: float = 120.0) -> str:  # noqa: ANN001
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    inst = pretty_midi.Instrument(program=0)
    t = 0.0
    for i, (p, s, e) in enumerate(notes):
        base = (i // 4) * 2.0
        inst.notes.append(pretty_midi.Note(velocity=90, pitch=p, start=base + s, end=base + e))
        t = max(t, base + e)
    pm.instruments.append(inst)
    buf = io.BytesIO()
    pm.write(buf)
    r = client.post("/api/uploads", files={"file": ("tune.mid", buf.getvalue(), "audio/midi")})
    assert r.status_code == 201, r.text
    return r.json()["asset_id"]


# --- the models -------------------------------------------------------------------------------------


def test_hierarchical_model_round_trip_and_any_number_of_segments(tmp_path: Path) -> None:
    model = tiny_long()
    x = torch.randint(0, model.num_classes, (3, 8 * 32))
    out = model(x)
    assert out["logits"].shape == (3, 256, model.num_classes)
    terms = model.loss(x, out, step=10)
    assert torch.isfinite(terms["loss"]) and 0 <= float(terms["accuracy"]) <= 1
    short = model(x[:, :128])  # 8-bar windows train the same model
    assert short["logits"].shape == (3, 128, model.num_classes)
    model.save_pretrained(tmp_path / "m")
    again = HierarchicalMusicVAE.from_pretrained(tmp_path / "m")
    mu, _ = again.encode(x)
    assert torch.allclose(mu, model.encode(x)[0])


def test_long_codes_continue_past_one_block_and_fitting_moves_towards_the_given_codes() -> None:
    vae = LongMelodyVAE(tiny_long())
    gen = torch.Generator().manual_seed(1)
    codes = vae.long_codes(2, 12, gen)  # 24 bars: one 16-bar block, then a continued block
    assert codes.shape == (2, 12, vae.model.config.bar.z_size)
    given = torch.randn(3, 4, vae.model.config.bar.z_size) * 0.5
    fitted = vae.fit_codes(given, 6, torch.Generator().manual_seed(2), iterations=80)
    unfitted = vae.fit_codes(given, 6, torch.Generator().manual_seed(2), iterations=0)
    err_fit = (fitted[:, :4] - given).square().sum()
    err_start = (unfitted[:, :4] - given).square().sum()
    assert err_fit < err_start  # the conductor was steered towards the melody to continue
    melodies = vae.decode(codes, 0.5, gen)
    assert len(melodies) == 2 and all(n.end <= 12 * 32 for m in melodies for n in m)


def test_gibbs_keeps_the_given_voice_and_fills_the_others() -> None:
    torch.manual_seed(0)
    model = Coconet(CONFIGS["tiny"]).eval()
    cfg = model.config
    t = 16
    score = torch.zeros(4, t, dtype=torch.long)
    score[0] = torch.tensor([to_class(60 + (i % 8), cfg) for i in range(t)])
    fill = torch.ones(4, t, dtype=torch.bool)
    fill[0] = False
    out = gibbs(model, score, fill, iterations=6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[0], score[0])
    assert out.shape == (4, t) and int(out.max()) < cfg.num_classes
    same = gibbs(model, score, fill, iterations=6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, same)  # seeded: reproducible


def test_voice_leading_measures_count_what_they_say() -> None:
    cfg = CoconetConfig()
    c = lambda p: to_class(p, cfg)  # noqa: E731
    # soprano G4 -> A4 over bass C3 -> D3: a parallel fifth (twelfth) between the outer voices
    score = np.array([[c(67), c(69)], [c(64), c(65)], [c(60), c(60)], [c(48), c(50)]])
    assert parallel_perfects(score, cfg) == 1
    contrary = np.array([[c(67), c(65)], [c(64), c(65)], [c(60), c(60)], [c(48), c(50)]])
    assert parallel_perfects(contrary, cfg) == 0
    bad, total = out_of_range(np.array([[c(84 - 3)] * 2, [c(40)] * 2, [c(55)] * 2, [c(50)] * 2]), cfg)
    assert (bad, total) == (1, 4)  # the alto at E2 is out of range; the soprano's A5 is in


def test_picked_chords_fit_the_melody_and_the_backing_follows_them() -> None:
    key = parse_key("C major")
    melody = [Note(60, 0, 4), Note(64, 4, 8), Note(67, 8, 16), Note(67, 16, 20), Note(71, 20, 24), Note(74, 24, 32)]
    chords = pick_chords(melody, 2, key)
    assert [ch.symbol for ch in chords] == ["C", "G"]
    parts = accompaniment(chords, 2, key, melody)
    pads, bass = parts
    assert [p.name for p in parts] == ["chords", "bass"]
    for note in pads.notes:
        bar = note.start // 16
        assert note.pitch % 12 in chords[bar].tones and note.pitch < min(n.pitch for n in melody)
    assert [n.pitch % 12 for n in bass.notes[::2]] == [0, 7]  # the roots on beat 1
    assert chord_marks(parse_progression("Am Am F G"), 4) == [(0, "Am"), (32, "F"), (48, "G")]


# --- the studio -------------------------------------------------------------------------------------


def test_continue_keeps_the_source_and_adds_the_bars(mclient) -> None:  # noqa: ANN001
    src = upload_melody(mclient)
    metas = run(mclient, "/api/music/continue", {"source": src, "bars": 6, "n": 2, "seed": 3})
    assert len(metas) == 2
    source_notes = None
    for m in metas:
        p = m["params"]
        assert p["op"] == "continue" and p["given_bars"] == 4 and p["bars"] == 10 and p["method"] == "hierarchical"
        notes = [Note(*n) for n in p["notes"]]
        given = [n for n in notes if n.start < 64]
        source_notes = source_notes or given
        assert given == source_notes and len(given) == 16  # the source, note for note
        assert all(64 <= n.start and n.end <= 160 for n in notes[len(given) :])
    again = run(mclient, "/api/music/continue", {"source": src, "bars": 6, "n": 2, "seed": 3})
    assert [m["params"]["notes"] for m in again] == [m["params"]["notes"] for m in metas]


def test_continue_without_a_long_model_chains_2_bar_codes(tmp_path: Path, models: dict[str, Path]) -> None:
    from fastapi.testclient import TestClient

    from genstudio.api.app import create_app
    from genstudio.config import Settings

    s = Settings(data_dir=tmp_path / "d", executor="thread", music_model=str(models["bar"]), music_long_model="")
    s.ensure_dirs()
    with TestClient(create_app(s)) as c:
        src = upload_melody(c)
        (m,) = run(c, "/api/music/continue", {"source": src, "bars": 4, "n": 1, "seed": 1})
        assert m["params"]["method"] == "chained" and m["params"]["bars"] == 8
        (s8,) = run(c, "/api/music/sample", {"bars": 8, "n": 1, "seed": 1})
        assert s8["params"]["method"] == "chained"


def test_harmonize_writes_four_voices_in_midi_and_musicxml(mclient) -> None:  # noqa: ANN001
    src = upload_melody(mclient)
    (m,) = run(mclient, "/api/music/harmonize", {"source": src, "seed": 5})
    p = m["params"]
    assert p["op"] == "harmonize" and p["melody_voice"] == "soprano" and p["part_name"] == "soprano"
    assert [part["name"] for part in p["parts"]] == ["alto", "tenor", "bass"]
    for part in p["parts"]:
        assert part["notes"], part["name"]
        assert all(0 <= s < e <= p["bars"] * 16 and s % 2 == 0 for _, s, e in part["notes"])  # on the eighth grid
    data = mclient.get(m["url"]).content
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    assert len(pm.instruments) == 4
    assert sorted((n.pitch, round(n.start * 8)) for n in pm.instruments[0].notes) == sorted(
        (a, s) for a, s, _ in p["notes"]
    )  # the melody track is the source itself
    xml = mclient.get(m["url"].split("?")[0] + "?format=musicxml").text
    assert xml.count("<score-part ") == 4 and "<part-name>Bass</part-name>" in xml


def test_harmonize_other_voices_and_bad_voice_lists(mclient) -> None:  # noqa: ANN001
    src = upload_melody(mclient)
    (m,) = run(mclient, "/api/music/harmonize", {"source": src, "voices": ["soprano", "bass"], "seed": 1})
    assert m["params"]["melody_voice"] == "alto"
    assert [part["name"] for part in m["params"]["parts"]] == ["soprano", "bass"]
    for voices in ([], ["alto", "alto"], ["soprano", "alto", "tenor", "bass"]):
        r = mclient.post("/api/music/harmonize", json={"source": src, "voices": voices})
        assert r.status_code == 422 and "voices" in r.text, r.text
    r = mclient.post("/api/music/harmonize", json={"source": src, "voices": ["piano"]})
    assert r.status_code == 422
    r = mclient.post("/api/music/continue", json={"source": src, "bars": 3})
    assert r.status_code == 422 and "even" in r.text
    r = mclient.post("/api/music/continue", json={"source": src, "bars": 30})  # 4 + 30 > max_bars 32
    assert r.status_code == 422 and "GENSTUDIO_MAX_BARS" in r.text and "the source has 4 bars" in r.text


def test_sample_with_chords_and_a_backing_writes_them_into_every_format(mclient) -> None:  # noqa: ANN001
    (m,) = run(
        mclient, "/api/music/sample", {"n": 1, "bars": 4, "chords": "C Am F G", "accompaniment": True, "seed": 2}
    )
    p = m["params"]
    assert p["chords_at"] == [[0, "C"], [16, "Am"], [32, "F"], [48, "G"]]
    assert [part["name"] for part in p["parts"]] == ["chords", "bass"]
    import mido

    data = mclient.get(m["url"]).content
    mid = mido.MidiFile(file=io.BytesIO(data))
    markers = [msg.text for t in mid.tracks for msg in t if msg.type == "marker"]
    assert markers == ["C", "Am", "F", "G"]
    assert len(pretty_midi.PrettyMIDI(io.BytesIO(data)).instruments) == 3
    xml = mclient.get(m["url"].split("?")[0] + "?format=musicxml").text
    assert xml.count("<harmony") == 4 and xml.count("<score-part ") == 3
    (plain,) = run(mclient, "/api/music/sample", {"n": 1, "bars": 4, "accompaniment": True, "seed": 2})
    assert plain["params"]["chords_picked"] and plain["params"]["chords_at"][0][0] == 0


def test_sheet_music_spells_notes_in_the_key() -> None:
    from genstudio.music.render import Melody, musicxml_bytes

    flat = Melody([Note(68, 0, 8), Note(70, 8, 16), Note(73, 16, 32)], 2, key=parse_key("Ab major"))
    xml = musicxml_bytes(flat).decode()
    assert "<step>G</step>" not in xml and "<alter>1</alter>" not in xml  # A-flat, B-flat, D-flat: no sharps
    assert xml.count("<alter>-1</alter>") == 3
    sharp = Melody([Note(66, 0, 16), Note(68, 16, 32)], 2, key=parse_key("E major"))
    xml = musicxml_bytes(sharp).decode()
    assert xml.count("<alter>1</alter>") == 2 and "<alter>-1</alter>" not in xml  # F-sharp, G-sharp


def test_cli_continue_and_harmonize(
    tmp_path: Path, models: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from genstudio.cli import main

    monkeypatch.setenv("GENSTUDIO_MUSIC_MODEL", str(models["bar"]))
    monkeypatch.setenv("GENSTUDIO_MUSIC_LONG_MODEL", str(models["long"]))
    monkeypatch.setenv("GENSTUDIO_HARMONY_MODEL", str(models["coconet"]))
    pm = pretty_midi.PrettyMIDI(initial_tempo=100)
    inst = pretty_midi.Instrument(program=73)
    inst.notes = [
        pretty_midi.Note(velocity=90, pitch=67 + (i % 5), start=i * 0.3, end=i * 0.3 + 0.3) for i in range(16)
    ]
    pm.instruments.append(inst)
    src = tmp_path / "tune.mid"
    pm.write(str(src))
    data = ["--data-dir", str(tmp_path / "d")]
    assert (
        main(
            ["music", "continue", str(src), "--bars", "4", "--n", "2", "--seed", "1", "-o", str(tmp_path / "c"), *data]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert len(summary["files"]) == 2 and all(
        m["bars"] == 2 + 4 for m in summary["melodies"]
    )  # 16 eighths at 100 BPM = 2 bars
    out = tmp_path / "h"
    assert (
        main(["music", "harmonize", str(src), "--formats", "midi,musicxml", "--seed", "2", "-o", str(out), *data]) == 0
    )
    (mid,) = out.glob("*.mid")
    assert len(pretty_midi.PrettyMIDI(str(mid)).instruments) == 4
    assert (out / mid.with_suffix(".musicxml").name).read_text().count("<score-part ") == 4
    assert main(["music", "harmonize", str(src), "--voices", "alto,alto", "-o", str(out), *data]) != 0
    assert "--voices: each voice once" in capsys.readouterr().err


def test_uploads_are_listed_and_their_melody_lines_come_with_notes(mclient) -> None:  # noqa: ANN001
    from PIL import Image

    first = upload_melody(mclient)
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    for program, base in ((0, 72), (40, 60)):
        inst = pretty_midi.Instrument(program=program)
        inst.notes = [pretty_midi.Note(velocity=90, pitch=base + i, start=i * 0.5, end=i * 0.5 + 0.5) for i in range(4)]
        pm.instruments.append(inst)
    buf = io.BytesIO()
    pm.write(buf)
    r = mclient.post("/api/uploads", files={"file": ("../../two tracks.mid", buf.getvalue(), "audio/midi")})
    assert r.status_code == 201
    second, melody = r.json()["asset_id"], r.json()["melody"]
    assert melody["note_list"][0][:2] == [melody["note_list"][0][0], 0] and len(melody["note_list"]) == 4
    png = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(png, "PNG")
    assert mclient.post("/api/uploads", files={"file": ("x.png", png.getvalue(), "image/png")}).status_code == 201

    page = mclient.get("/api/uploads?kind=midi").json()
    assert [i["asset_id"] for i in page["items"]] == [second, first] and page["next"] is None
    assert page["items"][0]["name"] == "two tracks.mid" and page["items"][0]["kind"] == "midi"  # no directories
    assert len(mclient.get("/api/uploads").json()["items"]) == 3
    one = mclient.get("/api/uploads?limit=1").json()
    assert len(one["items"]) == 1 and one["next"]
    assert mclient.get("/api/uploads?before=nope").status_code == 422

    t0 = mclient.get(f"/api/music/tracks/{second}?track=0").json()["melody"]
    t1 = mclient.get(f"/api/music/tracks/{second}?track=1").json()["melody"]
    assert [n[0] for n in t0["note_list"]] == [72, 73, 74, 75] and [n[0] for n in t1["note_list"]] == [60, 61, 62, 63]
    assert t1["track"] == 1 and t1["tempo"] == 120
    r = mclient.get(f"/api/music/tracks/{second}?track=5")
    assert r.status_code == 422 and "track" in r.text


def test_the_fitted_prior_is_what_long_pieces_are_drawn_from(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from genstudio.music.hierarchical import PRIOR_FILE

    model = tiny_long()
    model.save_pretrained(tmp_path / "m")
    z = model.config.z_size
    mean = torch.full((z,), 3.0)
    tril = torch.eye(z) * 0.01
    save_file({"mean": mean, "scale_tril": tril}, tmp_path / "m" / PRIOR_FILE)
    vae = LongMelodyVAE.from_pretrained(tmp_path / "m")
    draws = vae.prior_sample(64, torch.Generator().manual_seed(0))
    assert torch.allclose(draws.mean(0), mean, atol=0.01) and float(draws.std(0).mean()) < 0.02
    assert float(vae.prior_penalty(mean[None])) == pytest.approx(0.0)
    assert float(vae.prior_penalty(torch.zeros(1, z))) == pytest.approx(0.5 * z * 300.0**2, rel=1e-4)
    plain = LongMelodyVAE(model)  # no prior file: N(0, I)
    assert float(plain.prior_penalty(torch.ones(1, z))) == pytest.approx(0.5 * z)
    save_file({"mean": torch.zeros(z + 1), "scale_tril": torch.eye(z + 1)}, tmp_path / "m" / PRIOR_FILE)
    with pytest.raises(ValueError, match="does not fit"):
        LongMelodyVAE.from_pretrained(tmp_path / "m")


def test_the_voice_leading_pass_never_adds_parallels_or_touches_given_voices() -> None:
    from genstudio.music.coconet import parallel_positions, reduce_parallels

    torch.manual_seed(0)
    model = Coconet(CONFIGS["tiny"]).eval()
    cfg = model.config
    c = lambda p: to_class(p, cfg)  # noqa: E731
    # Soprano and bass in parallel octaves all the way, alto and tenor in parallel fifths: many parallels.
    t = 16
    score = torch.tensor(
        [
            [c(60 + 12 + i % 5) for i in range(t)],
            [c(60 + i % 5) for i in range(t)],
            [c(53 + i % 5) for i in range(t)],
            [c(48 + i % 5) for i in range(t)],
        ]
    )
    fill = torch.ones(4, t, dtype=torch.bool)
    fill[0] = False
    before = parallel_perfects(score.numpy(), cfg)
    assert before > 0 and len(parallel_positions(score.numpy(), cfg)) == before
    out = reduce_parallels(model, score, fill, rounds=20, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out[0], score[0])
    assert parallel_perfects(out.numpy(), cfg) < before
