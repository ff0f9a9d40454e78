"""The music studio page (/music) in a real headless Chromium against a real server process: compose, piano
roll, playback, sheet music, vary, interpolate, continue, harmonize and MIDI upload, under the server's
Content-Security-Policy."""

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


BUILTIN_HARMONY_MODEL = BUILTIN_MELODY_MODEL.parent / "chorale-4voice"


def _harmony_env(root: Path) -> dict[str, str]:
    """The built-in harmony model where it is installed, else a tiny seeded Coconet (its chorales are noise,
    but the page shows them the same way)."""
    if (BUILTIN_HARMONY_MODEL / "model.safetensors").is_file():
        return {}
    import torch

    from genstudio.music.coconet import CONFIGS, Coconet

    torch.manual_seed(0)
    Coconet(CONFIGS["tiny"]).eval().save_pretrained(root / "coconet-tiny")
    return {"GENSTUDIO_HARMONY_MODEL": str(root / "coconet-tiny")}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (BUILTIN_MELODY_MODEL / "model.safetensors").is_file():
        pytest.skip("the built-in melody model is not present")
    root = tmp_path_factory.mktemp("music-ui")
    yield from _serve(root / "data", _harmony_env(root))


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


def _run_job(server: str, op: str, body: dict[str, Any]) -> list[str]:
    """A music job through the API, waited for: its result ids."""
    job_id = _get_json(f"{server}/api/music/{op}", body)["job_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = _get_json(f"{server}/api/jobs/{job_id}")
        if job["status"] in ("succeeded", "failed", "cancelled"):
            assert job["status"] == "succeeded", job
            return job["assets"]
        time.sleep(0.2)
    raise AssertionError(f"{op} job {job_id} did not finish")


def _assert_parts_drawn(card: Any, params: dict[str, Any]) -> None:
    """The card's piano roll holds every note of the melody and of each part (a group of its own per part,
    the melody drawn last, on top), a legend naming them, and the chord symbols where they change."""
    roll = card.locator("svg.roll")
    assert roll.locator("rect.note").count() == len(params["notes"])
    parts = [p for p in params.get("parts") or [] if p["notes"]]
    groups = roll.locator("g.roll-part")
    assert groups.count() == len(parts)
    for i, part in enumerate(parts):
        assert groups.nth(i).get_attribute("data-part") == part["name"]
        assert groups.nth(i).locator("rect.part-note").count() == len(part["notes"])
    assert roll.evaluate(
        "s => [...s.querySelectorAll('g.roll-part, g.roll-notes')].pop().classList.contains('roll-notes')"
    )
    if parts:
        legend = card.locator(".roll-legend li").all_inner_texts()
        names = [params.get("part_name") or "melody"] + [p["name"] for p in parts]
        assert legend[: len(names)] == [n.capitalize() for n in names]
    chords = [c for i, c in enumerate(params.get("chords_at") or []) if i == 0 or c[1] != params["chords_at"][i - 1][1]]
    drawn = roll.locator("text.roll-chord").all_text_contents()
    assert 0 < len(drawn) <= len(chords) if chords else drawn == []
    if chords:  # written with ♯ and ♭
        assert drawn[0].replace("♯", "#").replace("♭", "b") == chords[0][1]


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
    # Every melody of the gallery, and the upload (listed by the server in any browser), can be chosen as the
    # start of an interpolation.
    expect(paged.locator("#i-start option")).to_have_count(10)
    expect(paged.locator("#i-start option", has_text="chords.mid")).to_have_count(1)


def test_bad_request_names_the_field(server: str, open_page: Any) -> None:
    expect = sync_api.expect
    page = open_page(f"{server}/music", allow_status=422)
    tempo = page.get_by_role("tabpanel", name="Sample").get_by_label("Tempo (BPM)")
    tempo.fill("5000")
    page.get_by_role("button", name="Compose", exact=True).click()
    error = page.locator("#sample-form .form-error")
    expect(error).to_contain_text("tempo")
    expect(error).to_contain_text("300")
    expect(tempo).to_have_attribute("aria-invalid", "true")
    # Interpolating with no melodies chosen asks for them before anything is sent.
    page.get_by_role("tab", name="Interpolate").click()
    page.get_by_role("button", name="Interpolate", exact=True).click()
    expect(page.locator("#interpolate-form .form-error")).to_contain_text("start: choose a start melody")
    # Harmonizing with no voice to write says so, and marks the voices.
    page.get_by_role("tab", name="Harmonize").click()
    form = page.get_by_role("tabpanel", name="Harmonize")
    for voice in ("Alto", "Tenor", "Bass"):
        form.get_by_label(voice, exact=True).uncheck()
    form.get_by_role("button", name="Harmonize", exact=True).click()
    error = page.locator("#harmonize-form .form-error")
    expect(error).to_contain_text("source: choose a melody to harmonize")
    expect(error).to_contain_text("voices: choose at least one voice to write")
    expect(form.get_by_label("Alto", exact=True)).to_have_attribute("aria-invalid", "true")
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


def test_backing_continue_and_harmonize(server: str, open_page: Any, tmp_path: Path) -> None:
    """A melody with a backing, then the Continue and Harmonize tabs on it: the requests they send, and their
    results drawn with every part, chord symbols, the given bars of a continuation, and four staves."""
    expect = sync_api.expect
    page = open_page(f"{server}/music", reduced_motion="reduce")  # no progress bar caught mid-way on a screenshot
    cards = page.locator("#gallery .card")
    before = cards.count()

    form = page.get_by_role("tabpanel", name="Sample")
    form.get_by_label("Melodies (1-64)").fill("1")
    form.get_by_label("Bars", exact=True).select_option("4")
    form.get_by_label("Add a backing (chords + bass)").check()
    form.get_by_label("Random seed").uncheck()
    form.get_by_label("Seed", exact=True).fill("21")
    with page.expect_request(lambda r: r.url.endswith("/api/music/sample")) as sent:
        page.get_by_role("button", name="Compose", exact=True).click()
    assert sent.value.post_data_json["accompaniment"] is True
    _wait_job_done(page, 1)
    expect(cards).to_have_count(before + 1)
    source_id = cards.first.get_attribute("data-asset-id")
    source = page.locator(f"#gallery .card[data-asset-id='{source_id}']")  # pinned: new cards come first
    sp = _meta(server, source_id)["params"]
    assert {p["name"] for p in sp["parts"]} == {"chords", "bass"} and sp["chords_at"]
    _assert_parts_drawn(source, sp)

    # Continue: "Continue this" picks the melody; the form sends its fields; the result keeps the given bars.
    source.get_by_role("button", name="Continue this").click()
    expect(page.get_by_role("tab", name="Continue")).to_have_attribute("aria-selected", "true")
    form = page.get_by_role("tabpanel", name="Continue")
    expect(form.get_by_label("Melody to continue")).to_have_value(source_id)
    form.get_by_label("New bars").select_option("4")
    form.get_by_label("Continuations (1-64)").fill("1")
    form.get_by_label("Seed").fill("5")
    form.get_by_label("Add a backing (chords + bass)").check()
    with page.expect_request(lambda r: r.url.endswith("/api/music/continue")) as sent:
        form.get_by_role("button", name="Continue", exact=True).click()
    assert sent.value.post_data_json == {
        "source": source_id,
        "bars": 4,
        "n": 1,
        "temperature": 0.5,
        "seed": 5,
        "accompaniment": True,
    }
    job = _wait_job_done(page, 1)
    expect(job.locator(".job-prompt")).to_have_text(f"Continue {source_id[:8]} by 4 bars ×1")
    expect(cards).to_have_count(before + 2)
    continued_id = cards.first.get_attribute("data-asset-id")
    continued = page.locator(f"#gallery .card[data-asset-id='{continued_id}']")
    cp = _meta(server, continued_id)["params"]
    assert cp["op"] == "continue" and cp["given_bars"] == 4 and cp["bars"] == 8
    expect(continued.locator(".melody-title")).to_contain_text("Continuation 1")
    expect(continued.locator(".m-bars")).to_have_text("8 (4 given + 4 new)")
    _assert_parts_drawn(continued, cp)
    roll = continued.locator("svg.roll")
    # The given half is shaded, and the line between given and new bars sits half-way along the notes area.
    background = roll.locator("rect.roll-bg")
    given = roll.locator("rect.roll-given")
    assert float(given.get_attribute("width")) == pytest.approx(float(background.get_attribute("width")) / 2)
    line_x = float(roll.locator("line.roll-given-line").get_attribute("x1"))
    assert line_x == pytest.approx(float(background.get_attribute("x")) + float(background.get_attribute("width")) / 2)
    expect(continued.locator(".roll-legend")).to_contain_text("Given: bars 1-4")
    expect(continued.locator(".roll-legend")).to_contain_text("New: bars 5-8")
    page.screenshot(path=str(screenshot_path("music-continue.png", tmp_path)), full_page=True)

    # Harmonize: three voices under the melody, each drawn in the roll and on a staff of its own.
    source.get_by_role("button", name="Harmonize this").click()
    expect(page.get_by_role("tab", name="Harmonize")).to_have_attribute("aria-selected", "true")
    form = page.get_by_role("tabpanel", name="Harmonize")
    expect(form.get_by_label("Melody to harmonize")).to_have_value(source_id)
    for voice in ("Alto", "Tenor", "Bass"):
        expect(form.get_by_label(voice, exact=True)).to_be_checked()
    form.get_by_label("Seed").fill("3")
    with page.expect_request(lambda r: r.url.endswith("/api/music/harmonize")) as sent:
        form.get_by_role("button", name="Harmonize", exact=True).click()
    assert sent.value.post_data_json == {
        "source": source_id,
        "voices": ["alto", "tenor", "bass"],
        "n": 1,
        "temperature": 0.75,
        "seed": 3,
    }
    _wait_job_done(page, 1)
    expect(cards).to_have_count(before + 3)
    harmony_id = cards.first.get_attribute("data-asset-id")
    harmony = page.locator(f"#gallery .card[data-asset-id='{harmony_id}']")
    hp = _meta(server, harmony_id)["params"]
    assert hp["op"] == "harmonize" and hp["part_name"] == "soprano"
    assert [p["name"] for p in hp["parts"]] == ["alto", "tenor", "bass"]
    expect(harmony.locator(".melody-title")).to_contain_text("Harmonization 1")
    _assert_parts_drawn(harmony, hp)
    expect(harmony.locator(".roll-legend li")).to_have_text(["Soprano", "Alto", "Tenor", "Bass"])
    harmony.get_by_role("button", name="Sheet music").click()
    sheet = harmony.locator(".sheet")
    expect(sheet).to_have_attribute("data-renderer", "osmd")
    names = sheet.locator("svg text").all_text_contents()
    assert all(n in names for n in ("Soprano", "Alto", "Tenor", "Bass")), names
    harmony.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_path("music-harmonize.png", tmp_path)), full_page=True)

    # Without the sheet music library, the page's own staves: one per voice, every note on its staff.
    plain = open_page(f"{server}/music", allow_status=503, service_workers="block")
    plain.route("**/opensheetmusicdisplay.min.js", lambda route: route.fulfill(status=503, body="unavailable"))
    card = plain.locator(f"#gallery .card[data-asset-id='{harmony_id}']")
    card.get_by_role("button", name="Sheet music").click()
    expect(card.locator(".sheet")).to_have_attribute("data-renderer", "simple")
    staves = card.locator(".sheet g.staff-part")
    expect(staves).to_have_count(4)
    for i, (name, notes) in enumerate([("soprano", hp["notes"])] + [(p["name"], p["notes"]) for p in hp["parts"]]):
        assert staves.nth(i).get_attribute("data-part") == name
        assert staves.nth(i).locator("ellipse.staff-note").count() == len(notes)


def test_interpolation_strip(server: str, open_page: Any) -> None:
    """An interpolation's results stand together, from the start to the end in `t` order, also when the
    gallery brings them in over two pages."""
    expect = sync_api.expect
    start, end = _run_job(server, "sample", {"n": 2, "bars": 2, "seed": 8})
    page = open_page(f"{server}/music")
    page.get_by_role("tab", name="Interpolate").click()
    page.get_by_label("Start melody").select_option(start)
    page.get_by_label("End melody").select_option(end)
    page.get_by_label("Steps (2-32)").fill("4")
    page.get_by_role("button", name="Interpolate", exact=True).click()
    _wait_job_done(page, 4)

    def check(page: Any) -> None:
        strip = page.locator("#gallery > li").first
        expect(strip).to_have_class("strip")
        expect(strip.locator(".strip-title")).to_have_text(f"Interpolation from {start[:8]} to {end[:8]}")
        cards = strip.locator(".card")
        expect(cards).to_have_count(4)
        expect(cards.locator(".strip-step")).to_have_text(["Start", "Step 2 of 4", "Step 3 of 4", "End"])
        ts = [_meta(server, cards.nth(i).get_attribute("data-asset-id"))["params"]["t"] for i in range(4)]
        assert ts == sorted(ts) and ts[0] == 0 and ts[-1] == 1
        # Side by side, left to right.
        boxes = [cards.nth(i).bounding_box() for i in range(2)]
        assert boxes[0]["x"] + boxes[0]["width"] <= boxes[1]["x"] and boxes[0]["y"] == boxes[1]["y"]

    check(page)
    # Two results a page: the strip fills in as "Load more" brings the rest, still in order.
    paged = open_page(f"{server}/music?limit=2")
    expect(paged.locator("#gallery .strip .card")).to_have_count(2)
    paged.get_by_role("button", name="Load more").click()
    check(paged)


def test_upload_listed_after_reload(server: str, open_page: Any, tmp_path: Path) -> None:
    """An uploaded MIDI file stays listed (with its track choice) after the page is reloaded, and its melody
    plays in the browser; deleting it takes it off the list for good."""
    expect = sync_api.expect
    midi = tmp_path / "reload.mid"
    _polyphonic_midi(midi)
    page = open_page(f"{server}/music")
    # The server lists every upload: start from none (earlier tests on this server uploaded some).
    for item in page.request.get(f"{server}/api/uploads?kind=midi&limit=200").json()["items"]:
        assert page.request.delete(f"{server}/api/assets/{item['asset_id']}").ok
    page.reload()
    page.wait_for_selector("body[data-ready='true']", state="attached")
    with page.expect_response(lambda r: r.url.endswith("/api/uploads")) as answer:
        page.get_by_label("Upload a MIDI file").set_input_files(str(midi))
    melody = answer.value.json()["melody"]
    upload = page.locator("#uploads .upload")
    expect(upload).to_have_count(1)
    upload_id = upload.get_attribute("data-asset-id")
    upload.get_by_label("Track").select_option("2")

    page.reload()
    page.wait_for_selector("body[data-ready='true']", state="attached")
    upload = page.locator("#uploads .upload")
    expect(upload).to_have_count(1)
    assert upload.get_attribute("data-asset-id") == upload_id
    expect(upload.locator(".upload-name")).to_have_text("reload.mid")
    expect(upload.locator(".upload-summary")).to_contain_text(re.compile(r"from track \d of 3\."))
    expect(upload.get_by_label("Track")).to_have_value("2")
    upload.get_by_role("button", name="Vary this").click()
    expect(page.get_by_label("Melody to vary")).to_have_value(upload_id)
    with page.expect_request(lambda r: r.url.endswith("/api/music/vary")) as sent:
        page.get_by_role("button", name="Vary", exact=True).click()
    assert sent.value.post_data_json["track"] == 2
    _wait_job_done(page, 2)

    page.once("dialog", lambda dialog: dialog.accept())
    upload.get_by_role("button", name="Delete").click()
    expect(page.locator("#uploads .upload")).to_have_count(0)
    page.reload()
    page.wait_for_selector("body[data-ready='true']", state="attached")
    expect(page.locator("#uploads .upload")).to_have_count(0)
    expect(page.locator("#v-source option", has_text="reload.mid")).to_have_count(0)

    # An upload made elsewhere (another browser, a script) is listed too: the server keeps the list.
    other = page.request.post(
        f"{server}/api/uploads",
        multipart={"file": {"name": "elsewhere.mid", "mimeType": "audio/midi", "buffer": midi.read_bytes()}},
    )
    assert other.status == 201
    page.reload()
    page.wait_for_selector("body[data-ready='true']", state="attached")
    expect(page.locator("#uploads .upload .upload-name", has_text="elsewhere.mid")).to_have_count(1)
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#uploads .upload").get_by_role("button", name="Delete").click()
    expect(page.locator("#uploads .upload")).to_have_count(0)

    assert "note_list" in melody
    page.get_by_label("Upload a MIDI file").set_input_files(str(midi))
    upload = page.locator("#uploads .upload")
    expect(upload.locator("svg.roll rect.note")).to_have_count(len(melody["note_list"]))
    upload.get_by_role("button", name="Play").click()
    expect(upload.get_by_role("button", name="Stop")).to_have_attribute("aria-pressed", "true")
    expect(upload.locator(".playhead")).to_have_attribute("visibility", "visible")
    upload.get_by_role("button", name="Stop").click()
    expect(upload.get_by_role("button", name="Play")).to_have_attribute("aria-pressed", "false")


def test_phone_tabs_and_results(server: str, open_page: Any) -> None:
    """At 390 px: the five tabs fit the panel, each form and the gallery's strips, parts and continuations
    stay within the screen's width (a long roll or a strip scrolls inside its own box)."""
    expect = sync_api.expect
    source = _run_job(server, "sample", {"n": 2, "bars": 4, "seed": 4, "accompaniment": True})
    _run_job(server, "continue", {"source": source[0], "bars": 8, "n": 1, "seed": 1})
    _run_job(server, "interpolate", {"start": source[0], "end": source[1], "steps": 3})
    page = open_page(
        f"{server}/music", viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
    )

    def width() -> list[int]:
        return page.evaluate("() => [window.innerWidth, document.documentElement.scrollWidth]")

    panel = page.locator(".compose").bounding_box()
    for name in ("Sample", "Interpolate", "Vary", "Continue", "Harmonize"):
        tab = page.get_by_role("tab", name=name)
        box = tab.bounding_box()
        assert panel["x"] <= box["x"] and box["x"] + box["width"] <= panel["x"] + panel["width"], name
        tab.click()
        expect(page.get_by_role("tabpanel", name=name)).to_be_visible()
        assert width() == [390, 390], name
    expect(page.locator("#gallery .strip")).not_to_have_count(0)
    expect(page.locator("#gallery svg.roll g.roll-part")).not_to_have_count(0)
    expect(page.locator("#gallery svg.roll rect.roll-given")).not_to_have_count(0)
    assert width() == [390, 390]
