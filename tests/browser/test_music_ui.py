"""The music studio page (/music) in a real headless Chromium against a real server process: compose, piano
roll, playback, sheet music, vary, interpolate and MIDI upload, under the server's Content-Security-Policy."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import screenshot_path
from services import free_port

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

from genstudio.api.app import CSP  # noqa: E402
from genstudio.music.onnx_export import BUILTIN_MELODY_MODEL  # noqa: E402

pytestmark = pytest.mark.browser
sync_api.expect.set_options(timeout=30_000)

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
TIMEOUT_MS = 60_000


def _get_json(url: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=30) as r:
        return json.load(r)


def _serve(data_dir: Path, env_extra: dict[str, str]) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENSTUDIO_")}
    env.update(
        {"GENSTUDIO_DATA_DIR": str(data_dir), "GENSTUDIO_TORCH_THREADS": "1", "PYTHONUNBUFFERED": "1", **env_extra}
    )
    log = data_dir.parent / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "genstudio.cli", "serve", "--port", str(port), "--log-level", "warning"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
    base = f"http://127.0.0.1:{port}"
    token = env_extra.get("GENSTUDIO_API_TOKEN")
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(urllib.request.Request(f"{base}/api/health", headers=auth), timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not healthy after 90 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (BUILTIN_MELODY_MODEL / "model.safetensors").is_file():
        pytest.skip("the built-in melody model is not present")
    yield from _serve(tmp_path_factory.mktemp("music-ui") / "data", {})


TOKEN = "s3cret-music-token"


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (BUILTIN_MELODY_MODEL / "model.safetensors").is_file():
        pytest.skip("the built-in melody model is not present")
    yield from _serve(tmp_path_factory.mktemp("music-ui-token") / "data", {"GENSTUDIO_API_TOKEN": TOKEN})


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    """open_page(url, **context_options) -> the loaded music page under the server's own CSP; uncaught errors,
    console errors and policy violations fail the test."""
    contexts = []
    errors: list[str] = []

    def _open(url: str, *, allow_status: int | None = None, ready: bool = True, **options: Any) -> Any:
        """allow_status: a status the test provokes on purpose, whose console line is not an error."""
        expected = f"status of {allow_status} " if allow_status else None

        def on_console(msg: Any) -> None:
            if msg.type == "error" and not (expected and expected in msg.text):
                errors.append(f"console: {msg.text}")

        context = browser.new_context(**({"viewport": {"width": 1280, "height": 900}} | options))
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        context.expose_function("__cspViolation", lambda what: errors.append(f"CSP: {what}"))
        context.add_init_script(
            "document.addEventListener('securitypolicyviolation', "
            "e => window.__cspViolation(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`))"
        )
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", on_console)
        response = page.goto(url)
        assert response.headers["content-security-policy"] == CSP
        if ready:
            page.wait_for_selector("body[data-ready='true']", state="attached")
        assert page.evaluate("() => document.querySelectorAll('[style], [onclick], [onload], [onerror]').length") == 0
        return page

    yield _open
    for c in contexts:
        c.close()
    assert errors == [], f"errors in the page: {errors}"


def _meta(server: str, asset_id: str) -> dict[str, Any]:
    return _get_json(f"{server}/api/assets/{asset_id}/meta")


def _wait_job_done(page: Any, count: int) -> Any:
    job = page.locator("#jobs .job").first
    sync_api.expect(job.locator(".job-status")).to_have_text(f"Done · {count} melod{'y' if count == 1 else 'ies'}")
    sync_api.expect(job.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    return job


def _assert_rolls_match_meta(server: str, cards: Any) -> None:
    for i in range(cards.count()):
        card = cards.nth(i)
        notes = _meta(server, card.get_attribute("data-asset-id"))["params"]["notes"]
        assert notes, "a melody with no notes"
        assert card.locator("svg.roll rect.note").count() == len(notes)


def _polyphonic_midi(path: Path) -> None:
    """Three tracks: piano chords (the melody track: top line kept, the rest dropped), drums and a bass."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=100)
    piano = pretty_midi.Instrument(0, name="Piano")
    for i, (low, high) in enumerate([(60, 64), (62, 67), (64, 67), (65, 69), (67, 72), (65, 69), (64, 67), (60, 64)]):
        for pitch in (48, low, high):
            piano.notes.append(pretty_midi.Note(90, pitch, i * 0.6, i * 0.6 + 0.55))
    drums = pretty_midi.Instrument(0, is_drum=True, name="Drums")
    drums.notes.append(pretty_midi.Note(90, 36, 0.0, 0.1))
    bass = pretty_midi.Instrument(33, name="Bass")
    bass.notes.append(pretty_midi.Note(90, 40, 0.0, 1.0))
    pm.instruments += [piano, drums, bass]
    pm.write(str(path))


def test_compose_play_sheet_vary_interpolate_upload(server: str, open_page: Any, tmp_path: Path) -> None:
    expect = sync_api.expect
    page = open_page(f"{server}/music")
    expect(page.get_by_role("navigation", name="Studios").get_by_role("link", name="Music")).to_have_attribute(
        "aria-current", "page"
    )
    expect(page.locator("#s-instrument option")).to_have_count(129)

    # Compose two melodies in a key, with a fixed seed.
    form = page.get_by_role("tabpanel", name="Sample")
    form.get_by_label("Melodies (1-64)").fill("2")
    form.get_by_label("Bars", exact=True).select_option("2")
    # With the model choosing the key, the mode is its choice too: the control says so instead of being ignored.
    expect(form.get_by_label("Mode", exact=True)).to_be_disabled()
    form.get_by_label("Key", exact=True).select_option("D")
    expect(form.get_by_label("Mode", exact=True)).to_be_enabled()
    form.get_by_label("Mode", exact=True).select_option("minor")
    form.get_by_label("Instrument", exact=True).select_option("40")
    form.get_by_label("Random seed").uncheck()
    form.get_by_label("Seed", exact=True).fill("1234")
    page.get_by_role("button", name="Compose", exact=True).click()
    job = _wait_job_done(page, 2)
    expect(job.locator(".job-params")).to_contain_text("D minor")
    assert re.search(r"\b\d+ BPM", job.locator(".job-params").inner_text())  # tempo shown as a whole number
    assert not re.search(r"\d\.\d+ BPM", job.locator(".job-params").inner_text())
    cards = page.locator("#gallery .card")
    expect(cards).to_have_count(2)
    _assert_rolls_match_meta(server, cards)
    first = cards.first
    expect(first.locator(".m-key")).to_have_text("D minor")
    expect(first.locator(".melody-title")).to_contain_text("Violin")
    expect(first.locator(".m-seed")).to_have_text("1234")
    expect(first.locator(".m-stats")).to_contain_text("in key")
    first_id = first.get_attribute("data-asset-id")
    for name, query in (("MIDI", "download=true"), ("MusicXML", "format=musicxml&"), ("WAV", "format=wav&")):
        link = first.get_by_role("link", name=f"Download {name} of")
        assert query in link.get_attribute("href") and first_id in link.get_attribute("href")

    # Play: the WAV loads into the <audio> element and the playhead moves across the piano roll.
    with page.expect_response(lambda r: "format=wav" in r.url) as wav:
        first.get_by_role("button", name="Play").click()
    assert wav.value.status in (200, 206) and wav.value.headers["content-type"].startswith("audio/")
    page.wait_for_function(
        "id => { const a = document.querySelector(`[data-asset-id='${id}'] audio`); "
        "return a.readyState >= 1 && a.duration > 0; }",
        arg=first_id,
    )
    page.wait_for_function(
        "id => document.querySelector(`[data-asset-id='${id}'] .playhead`).getAttribute('visibility') === 'visible'",
        arg=first_id,
    )
    expect(first.get_by_role("button", name="Pause")).to_have_attribute("aria-pressed", "true")
    # One melody at a time: playing the second pauses the first.
    second = cards.nth(1)
    second.get_by_role("button", name="Play").click()
    expect(second.get_by_role("button", name="Pause")).to_have_attribute("aria-pressed", "true")
    expect(first.get_by_role("button", name="Play")).to_have_attribute("aria-pressed", "false")
    second.get_by_role("button", name="Pause").click()
    expect(second.get_by_role("button", name="Play")).to_have_attribute("aria-pressed", "false")
    # A click on the piano roll seeks there: 3/4 across two bars at 120 BPM is about 2.9 s in.
    roll = second.locator("svg.roll")
    box = roll.bounding_box()
    roll.click(position={"x": box["width"] * 0.75, "y": box["height"] / 2})
    at = second.locator("audio").evaluate("a => a.currentTime")
    assert 2.5 < at < 3.3, at

    # Sheet music rendered in the page from the MusicXML.
    first.get_by_role("button", name="Sheet music").click()
    sheet = first.locator(".sheet")
    expect(sheet).to_have_attribute("data-renderer", "osmd")
    assert sheet.locator("svg").count() >= 1 and sheet.locator("svg path").count() > 10
    page.screenshot(path=str(screenshot_path("music-studio.png", tmp_path)), full_page=True)

    # "Vary this" picks the melody and a Vary job adds its variations to the gallery.
    first.get_by_role("button", name="Vary this").click()
    expect(page.get_by_role("tab", name="Vary")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_label("Melody to vary")).to_have_value(first_id)
    page.get_by_label("Variations (1-64)").fill("2")
    page.get_by_role("button", name="Vary", exact=True).click()
    _wait_job_done(page, 2)
    expect(cards).to_have_count(4)
    varied = [cards.nth(i).get_attribute("data-asset-id") for i in range(2)]
    assert all(_meta(server, a)["params"]["op"] == "vary" for a in varied)
    _assert_rolls_match_meta(server, cards)

    # "Use as start" / "Use as end" and an interpolation in three steps.
    start, end = cards.nth(3), cards.nth(2)
    start.get_by_role("button", name="Use as start").click()
    expect(page.get_by_role("tab", name="Interpolate")).to_have_attribute("aria-selected", "true")
    end.get_by_role("button", name="Use as end").click()
    expect(page.get_by_label("Start melody")).to_have_value(start.get_attribute("data-asset-id"))
    expect(page.get_by_label("End melody")).to_have_value(end.get_attribute("data-asset-id"))
    page.get_by_label("Steps (2-32)").fill("3")
    page.get_by_role("button", name="Interpolate", exact=True).click()
    _wait_job_done(page, 3)
    expect(cards).to_have_count(7)
    path = [_meta(server, cards.nth(i).get_attribute("data-asset-id"))["params"] for i in range(3)]
    assert {p["op"] for p in path} == {"interpolate"}

    # The same two gallery melodies, interpolated in the browser: nothing is posted, the path is drawn.
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.get_by_role("button", name="Interpolate on this device").first.click()
    expect(page.locator("#ondevice-status")).to_contain_text("Interpolated 3 melodies in this browser", timeout=90_000)
    device_path = page.locator("#ondevice-results .card", has_text="On-device path")
    expect(device_path).to_have_count(3)
    assert all(device_path.nth(i).locator("svg.roll rect.note").count() > 0 for i in range(3))
    assert posts == [] and cards.count() == 7

    # Upload a polyphonic MIDI file: the page says what was dropped and offers its tracks.
    midi = tmp_path / "chords.mid"
    _polyphonic_midi(midi)
    page.get_by_label("Upload a MIDI file").set_input_files(str(midi))
    upload = page.locator("#uploads .upload").first
    expect(upload.locator(".upload-name")).to_have_text("chords.mid")
    summary = upload.locator(".upload-summary")
    expect(summary).to_contain_text("chord notes")
    expect(summary).to_contain_text("other tracks")
    expect(summary).to_contain_text("from track 0 of 3")
    expect(upload.get_by_label("Track")).to_have_count(1)
    expect(upload.locator(".track-select option")).to_have_count(3)
    expect(upload.get_by_label("Track")).to_have_value("0")

    # The upload varies like any melody.
    upload_id = upload.get_attribute("data-asset-id")
    upload.get_by_role("button", name="Vary this").click()
    expect(page.get_by_label("Melody to vary")).to_have_value(upload_id)
    page.get_by_label("Variations (1-64)").fill("1")
    page.get_by_role("button", name="Vary", exact=True).click()
    job = _wait_job_done(page, 1)
    expect(job.locator(".job-params")).to_contain_text("notes dropped")
    expect(cards).to_have_count(8)
    _assert_rolls_match_meta(server, cards.first)

    # The gallery pages newest first with "Load more", following the server's `next` cursor.
    newest_first = [cards.nth(i).get_attribute("data-asset-id") for i in range(8)]
    paged = open_page(f"{server}/music?limit=3")
    paged_cards = paged.locator("#gallery .card")
    expect(paged_cards).to_have_count(3)
    more = paged.get_by_role("button", name="Load more")
    more.click()
    expect(paged_cards).to_have_count(6)
    more.click()
    expect(paged_cards).to_have_count(8)
    expect(more).to_be_hidden()
    assert [paged_cards.nth(i).get_attribute("data-asset-id") for i in range(8)] == newest_first
    # Every melody of the gallery can be chosen as the start of an interpolation.
    expect(paged.locator("#i-start option")).to_have_count(9)


def test_bad_request_names_the_field(server: str, open_page: Any) -> None:
    expect = sync_api.expect
    page = open_page(f"{server}/music", allow_status=422)
    page.get_by_label("Tempo (BPM)").fill("5000")
    page.get_by_role("button", name="Compose", exact=True).click()
    error = page.locator("#sample-form .form-error")
    expect(error).to_contain_text("tempo")
    expect(error).to_contain_text("300")
    expect(page.get_by_label("Tempo (BPM)")).to_have_attribute("aria-invalid", "true")
    # Interpolating with no melodies chosen asks for them before anything is sent.
    page.get_by_role("tab", name="Interpolate").click()
    page.get_by_role("button", name="Interpolate", exact=True).click()
    expect(page.locator("#interpolate-form .form-error")).to_contain_text("start: choose a start melody")
    expect(page.locator("#jobs .job")).to_have_count(0)


def test_sample_on_this_device(server: str, open_page: Any) -> None:
    """The browser samples with onnxruntime-web and draws the melodies; nothing goes to the server's gallery."""
    expect = sync_api.expect
    page = open_page(f"{server}/music")
    before = len(_get_json(f"{server}/api/gallery?kind=music&limit=200")["items"])
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    form = page.get_by_role("tabpanel", name="Sample")
    form.get_by_label("Melodies (1-64)").fill("3")
    form.get_by_label("Random seed").uncheck()
    form.get_by_label("Seed", exact=True).fill("42")
    page.get_by_role("button", name="Sample on this device").click()
    expect(page.locator("#ondevice-status")).to_contain_text("Made 3 melodies in this browser", timeout=90_000)
    cards = page.locator("#ondevice-results .card")
    expect(cards).to_have_count(3)
    drawn = [cards.nth(i).locator("svg.roll rect.note").count() for i in range(3)]
    # The same seed through the module the page loaded gives the same melodies, drawn note for note.
    expected = page.evaluate(
        "() => import('/static/js/music-ondevice.js').then(m => m.sample(3, 0.5, 42)).then(r => r.notes)"
    )
    assert drawn == [len(n) for n in expected] and sum(drawn) > 0
    # They play in the browser (Web Audio), with the playhead moving.
    first = cards.first
    first.get_by_role("button", name="Play On-device melody 1").click()
    expect(first.get_by_role("button", name="Play On-device melody 1")).to_have_attribute("aria-pressed", "true")
    expect(first.locator(".playhead")).to_have_attribute("visibility", "visible")
    first.get_by_role("button", name="Play On-device melody 1").click()
    expect(first.get_by_role("button", name="Play On-device melody 1")).to_have_attribute("aria-pressed", "false")
    expect(first.locator(".playhead")).to_have_attribute("visibility", "hidden")
    # A path between two of them, in the browser too (the cards keep their model tokens).
    path_button = page.get_by_role("button", name="Interpolate on this device")
    expect(path_button).to_be_disabled()
    page.get_by_role("button", name="Use On-device melody 1 · seed 42 as the start of an on-device path").click()
    page.get_by_role("button", name="Use On-device melody 3 · seed 42 as the end of an on-device path").click()
    page.locator("#od-steps").fill("4")
    path_button.click()
    expect(page.locator("#ondevice-status")).to_contain_text("Interpolated 4 melodies in this browser", timeout=60_000)
    expect(cards).to_have_count(7)
    path = page.locator("#ondevice-results .card", has_text="On-device path")
    expect(path).to_have_count(4)
    assert all(path.nth(i).locator("svg.roll rect.note").count() > 0 for i in range(4))
    assert posts == []
    assert len(_get_json(f"{server}/api/gallery?kind=music&limit=200")["items"]) == before


def test_phone_layout(server: str, open_page: Any, tmp_path: Path) -> None:
    expect = sync_api.expect
    if not _get_json(f"{server}/api/gallery?kind=music&limit=1")["items"]:
        job = _get_json(f"{server}/api/music/sample", {"n": 1, "bars": 2, "seed": 7})["job_id"]
        for _ in range(300):
            if _get_json(f"{server}/api/jobs/{job}")["status"] == "succeeded":
                break
            time.sleep(0.2)
    page = open_page(
        f"{server}/music?limit=2",
        viewport={"width": 360, "height": 740},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    expect(page.locator("#gallery .card").first).to_be_visible()
    assert page.evaluate("() => [window.innerWidth, document.documentElement.scrollWidth]") == [360, 360]
    compose, gallery = page.locator(".compose").bounding_box(), page.locator("#gallery").bounding_box()
    assert compose["y"] + compose["height"] <= gallery["y"] and compose["width"] > 300
    roll = page.locator("#gallery .card svg.roll").first.bounding_box()
    assert roll["width"] > 280 and roll["height"] > 40
    page.screenshot(path=str(screenshot_path("music-phone.png", tmp_path)), full_page=True)


def test_api_token_is_asked_and_sent_for_audio_and_sheet_music(token_server: str, open_page: Any) -> None:
    expect = sync_api.expect
    page = open_page(f"{token_server}/music", allow_status=401, ready=False)
    sent: list[tuple[str, str | None]] = []
    page.on("request", lambda r: sent.append((r.url, r.headers.get("authorization"))) if "/api/" in r.url else None)
    dialog = page.get_by_role("dialog", name="API token required")
    dialog.get_by_label("API token").fill(TOKEN)
    dialog.get_by_role("button", name="Save token").click()
    page.wait_for_selector("body[data-ready='true']", state="attached")
    expect(page.locator("#s-instrument option")).to_have_count(129)

    form = page.get_by_role("tabpanel", name="Sample")
    form.get_by_label("Melodies (1-64)").fill("1")
    form.get_by_label("Bars", exact=True).select_option("2")
    page.get_by_role("button", name="Compose", exact=True).click()
    _wait_job_done(page, 1)
    card = page.locator("#gallery .card").first
    # <audio> cannot send the header: the WAV comes as a blob.
    card.get_by_role("button", name="Play").click()
    expect(card.locator("audio")).to_have_attribute("src", re.compile(r"^blob:"))
    page.wait_for_function("() => document.querySelector('#gallery .card audio').duration > 0")
    card.get_by_role("button", name="Pause").click()
    card.get_by_role("button", name="Sheet music").click()
    expect(card.locator(".sheet")).to_have_attribute("data-renderer", "osmd")
    assert any("format=wav" in u for u, _a in sent) and any("format=musicxml" in u for u, _a in sent)
    assert any(u.endswith("/events") for u, _a in sent)
    assert all(auth == f"Bearer {TOKEN}" for _u, auth in sent), sent
