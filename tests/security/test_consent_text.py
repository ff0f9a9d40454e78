"""Consent a person wrote: statements and subjects made of invisible, control or combining characters are
refused (API, live mode and the checker the CLI shares); a real statement passes, in any script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from security_helpers import png_bytes
from starlette.websockets import WebSocketDisconnect

from genstudio.api.app import create_app
from genstudio.config import Settings
from genstudio.faceswap.safeguards import ConsentIn, check_consent, visible_letters

STATEMENT = "I agree that my face may be used in this school deepfake lab."
ZWSP, NUL = "\u200b", "\x00"
INVISIBLE_STATEMENTS = {
    "zero-width spaces": ZWSP * 40,
    "zero-width mix": "\u200b\u200c\u200d\u2060\ufeff\u00ad" * 8,
    "NULs": NUL * 40,
    "control characters": "\x01\x07\x1b\x7f\x9b\t\n\r" * 10,
    "combining marks": "\u0301\u0308\u20dd\u0489" * 10,  # Mn and Me, on nothing
    "bidi and tag characters": "\u202e\u2066\U000e0041\U000e0042" * 10,
    "hangul fillers": "\u3164\u115f\u1160\uffa0" * 10,  # letters (Lo) that draw nothing
    "blanks of every width": "\u00a0\u2003\u3000\u2800 " * 10,
    "a short word padded": "ok" + ZWSP * 40,
}
INVISIBLE_SUBJECTS = {"zero-width space": ZWSP, "NUL": NUL, "combining mark": "\u0301", "filler": "\u3164 \u200b"}


def upload(c: TestClient, name: str) -> str:
    r = c.post("/api/uploads", files={"file": (name, png_bytes((96, 96)), "image/png")})
    assert r.status_code == 201, r.text
    return r.json()["asset_id"]


def test_invisible_consent_refused(settings: Settings) -> None:
    with TestClient(create_app(settings, start_workers=False)) as c:
        base = {"source": upload(c, "face.png"), "target": upload(c, "target.png")}
        for why, statement in INVISIBLE_STATEMENTS.items():
            r = c.post("/api/faceswap", json=base | {"consent": {"statement": statement, "subject": "Ann Example"}})
            assert r.status_code == 422, (why, r.status_code, r.text)
            detail = r.json()["detail"][0]
            assert detail["loc"] == ["body", "consent.statement"], (why, detail)
            assert "GENSTUDIO_FACESWAP_CONSENT_MIN_CHARS" in detail["msg"] or "required" in detail["msg"], detail
        for why, subject in INVISIBLE_SUBJECTS.items():
            r = c.post("/api/faceswap", json=base | {"consent": {"statement": STATEMENT, "subject": subject}})
            assert r.status_code == 422, (why, r.status_code, r.text)
            assert r.json()["detail"][0]["loc"] == ["body", "consent.subject"], (why, r.text)
        assert c.get("/api/health").json()["queue"]["queued"] == 0


def test_invisible_consent_refused_in_live_mode(settings: Settings) -> None:
    with TestClient(create_app(settings, start_workers=False)) as c:
        source = upload(c, "face.png")
        for consent, field in (
            ({"statement": ZWSP * 40, "subject": "Ann Example"}, "consent.statement"),
            ({"statement": STATEMENT, "subject": ZWSP}, "consent.subject"),
        ):
            with c.websocket_connect("/api/faceswap/live", subprotocols=["genstudio.live"]) as ws:
                ws.send_text(json.dumps({"source": source, "consent": consent}))
                error = ws.receive_json()
                assert error["type"] == "error" and error["detail"].startswith(f"{field}:"), error
                with pytest.raises(WebSocketDisconnect) as closed:
                    ws.receive_json()
                assert closed.value.code == 4422


def test_invisible_consent_refused_by_the_shared_check(settings: Settings, tmp_path: Path) -> None:
    """The API, live mode and `genstudio faceswap` all call check_consent: it holds the rule."""
    least = settings.faceswap_consent_min_chars
    for why, statement in INVISIBLE_STATEMENTS.items():
        with pytest.raises(ValueError, match="consent.statement") as refused:
            check_consent(ConsentIn(statement=statement, subject="Ann"), settings)
        assert refused.value.field == "consent.statement", why  # type: ignore[attr-defined]
    for subject in INVISIBLE_SUBJECTS.values():
        with pytest.raises(ValueError, match="consent.subject"):
            check_consent(ConsentIn(statement=STATEMENT, subject=subject), settings)
    # Exactly the configured minimum of visible letters passes, one fewer does not; padding does not count.
    words = ("I agree to this use " * 10).replace(" ", "")
    assert check_consent(ConsentIn(statement=words[:least], subject="Ann"), settings).statement == words[:least]
    with pytest.raises(ValueError, match=f"has {least - 1} visible letters"):
        check_consent(ConsentIn(statement=ZWSP.join(words[: least - 1]) + " ." * 30, subject="Ann"), settings)


@pytest.mark.parametrize("filler", ["x" * 20, "X" * 12 + "x" * 12, "abababababababababababab", "a" * 30 + "bcdefg",
                                    "1234 1234 1234 1234 1234", "ok ok ok ok ok ok ok ok ok ok"])
def test_filler_is_not_a_consent_statement(settings: Settings, filler: str) -> None:
    """Twenty "x" characters are twenty letters and no statement (issue 11): refused, naming the field."""
    with pytest.raises(ValueError, match="reads as filler") as refused:
        check_consent(ConsentIn(statement=filler, subject="Ann Example"), settings)
    assert refused.value.field == "consent.statement"  # type: ignore[attr-defined]


def test_real_consent_in_any_script_passes(settings: Settings) -> None:
    for statement, subject in (
        (STATEMENT, "Test Subject"),
        ("J'accepte que mon visage soit utilisé pour cet atelier.", "Zoë Ångström"),
        ("Ich bin einverstanden, dass mein Gesicht verwendet wird.", "Jörg"),
        ("我同意在本次学校深度伪造实验课中使用我的面部照片和视频资料", "李雷"),  # 29 letters, no spaces
        ("Согласен на использование моего лица в этой лаборатории.", "Иван"),
        ("Je suis d'accorde\u0301 pour l'atelier, re\u0301ponds oui", "Rene\u0301"),  # decomposed accents count
    ):
        out = check_consent(ConsentIn(statement=f"  {statement}\x00 ", subject=f"{subject}\x1b"), settings)
        assert out.statement == statement and out.subject == subject  # trimmed, controls dropped, text kept
    assert visible_letters("ﬁ ＡＢＣ ²") == 6  # compatibility forms count as what they are: fi ABC 2


def test_invisible_consent_refused_by_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from genstudio.cli import main

    face, target, out = tmp_path / "face.png", tmp_path / "target.png", tmp_path / "out.png"
    face.write_bytes(png_bytes((96, 96)))
    target.write_bytes(png_bytes((96, 96)))
    cases = ((ZWSP * 40, "Ann Example", "visible letters"), (STATEMENT, ZWSP, "name the person"))
    for consent, subject, words in cases:
        code = main(["faceswap", "--source", str(face), "--target", str(target), "--consent", consent,
                     "--subject", subject, "-o", str(out), "--data-dir", str(tmp_path / "data")])
        err = capsys.readouterr().err
        assert code == 1 and words in err and err.count("\n") == 1, err
        assert not out.exists()
