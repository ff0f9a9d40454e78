"""The face-swap page in a real headless Chromium against a real server process, with a fake camera
that plays a clip built from the astronaut photo (NASA, public domain), and the face picker (issue 11)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fs_media import astronaut_bgr, flat_png, grace_hopper_jpeg, png_bytes, two_faces

from helpers import screenshot_path
from services import free_port

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]
STATEMENT = "I agree that my face may be used in this school deepfake lab."


def make_y4m(path: Path, frames: int = 12, width: int = 640, height: int = 480) -> Path:
    """A raw I420 clip for Chromium's fake camera: the astronaut drifting a little, frame by frame."""
    base = cv2.resize(astronaut_bgr(512), (width + 2 * frames, height + 2 * frames), interpolation=cv2.INTER_AREA)
    with path.open("wb") as fh:
        fh.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            crop = np.ascontiguousarray(base[i : i + height, i : i + width])
            fh.write(b"FRAME\n" + cv2.cvtColor(crop, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("fs-browser") / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENSTUDIO_")}
    env.update({"GENSTUDIO_TORCH_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO / "src")})
    log = data_dir.parent / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "genstudio.cli", "serve", "--port", str(port), "--data-dir", str(data_dir),
             "--log-level", "warning"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/health", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
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
def page_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    camera = make_y4m(tmp_path_factory.mktemp("camera") / "astronaut.y4m")
    args = [
        "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}",
    ]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        errors: list[str] = []

        def _open(url: str) -> Any:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(60_000)
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
            page.goto(url)
            page.wait_for_selector("body[data-ready='true']", state="attached")
            assert page.evaluate("() => document.querySelectorAll('[style], [onclick], [onload]').length") == 0
            return page

        try:
            yield _open
        finally:
            browser.close()
        assert errors == [], errors


def _fill_consent(page: Any, face: Path) -> None:
    page.get_by_label("Face photo (the face to use)").set_input_files(str(face))
    page.get_by_label("Who consented (the person in the face photo)").fill("Test Subject")
    page.get_by_label("Consent statement").fill(STATEMENT)
    page.get_by_label("I confirm this person gave this consent").check()


def test_live_mode_with_a_fake_camera(server: str, page_factory: Any, tmp_path: Path) -> None:
    expect = sync_api.expect
    face = tmp_path / "grace_hopper.jpg"
    face.write_bytes(grace_hopper_jpeg())
    page = page_factory(f"{server}/faceswap")
    expect(page.get_by_role("link", name="Face swap")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("link", name="Music")).to_have_attribute("href", "/music")

    # Without consent nothing starts.
    page.get_by_label("Face photo (the face to use)").set_input_files(str(face))
    page.get_by_role("button", name="Start live camera").click()
    expect(page.locator("#fs-error")).to_contain_text("consent.subject")
    expect(page.locator("#live-output")).to_be_hidden()

    _fill_consent(page, face)
    page.get_by_role("button", name="Start live camera").click()
    expect(page.locator("#live-status")).to_contain_text("Live · consent")
    page.wait_for_function("() => Number(document.getElementById('live-frames').dataset.frames) >= 8", timeout=90_000)
    # The server's count of faces swapped in the last frame, and "no face in view" when there was none.
    faces, status = page.evaluate("() => { const e = document.getElementById('live-status'); "
                                  "return [e.dataset.faces, e.textContent]; }")
    assert faces is not None and status.startswith("Live · consent"), (faces, status)
    assert ("no face in view" in status) == (faces == "0") and ("swapped" in status) == (faces != "0"), status
    # Read the figure and its text at one instant: the page updates both with every frame.
    raw, text = page.evaluate("() => { const e = document.getElementById('live-fps'); "
                              "return [e.dataset.fps, e.textContent]; }")
    fps = float(raw)
    shown, unit = text.split()
    assert fps > 0 and unit == "fps" and abs(float(shown) - fps) <= 0.051, (raw, text)
    # The frames shown are the server's: decoded JPEGs carrying the label.
    # (a frame may be between two images when read: wait for one that has loaded)
    page.wait_for_function("() => document.getElementById('live-output').naturalWidth > 0", timeout=10_000)
    size = page.evaluate("() => [document.getElementById('live-output').naturalWidth, "
                         "document.getElementById('live-output').naturalHeight]")
    assert size == [640, 480]
    page.get_by_role("button", name="Stop live").click()
    expect(page.get_by_role("button", name="Start live camera")).to_be_visible()
    expect(page.locator("#live-status")).to_contain_text("Stopped after")
    row = page.locator("#audit-rows tr").first
    expect(row).to_have_attribute("data-outcome", "succeeded")
    expect(row).to_contain_text("live")
    print(f"live mode in the browser: {fps:.1f} fps over the last 2 s")


def test_swap_a_clip_and_verify(server: str, page_factory: Any, clip: Path, tmp_path: Path) -> None:
    expect = sync_api.expect
    face = tmp_path / "grace_hopper.jpg"
    face.write_bytes(grace_hopper_jpeg())
    page = page_factory(f"{server}/faceswap")
    # No face models set on this server: their controls are off, and the page says which settings they need.
    expect(page.locator("#fs-models-note")).to_contain_text("GENSTUDIO_FACESWAP_ENHANCER_MODEL")
    expect(page.get_by_label("Enhance face")).to_be_disabled()
    expect(page.get_by_label("Keep hands and objects in front of the face")).to_be_disabled()
    page.get_by_label("Target video or image (the person to change)").set_input_files(str(clip))
    page.get_by_label("Face photo (the face to use)").set_input_files(str(face))
    page.get_by_role("button", name="Swap faces").click()
    expect(page.locator("#fs-error")).to_contain_text("consent")

    _fill_consent(page, face)
    page.get_by_label("Label corner").select_option("top-left")
    page.get_by_role("button", name="Swap faces").click()
    expect(page.locator("#fs-result")).to_be_visible(timeout=180_000)
    expect(page.locator("#fs-result-video")).to_be_visible()
    box = page.locator("#fs-verify")
    expect(box.locator("[data-field='label'] dd")).to_have_text("found (top-left)", timeout=60_000)
    expect(box.locator("[data-field='watermark'] dd")).to_contain_text("found (confidence")
    expect(box.locator("[data-field='manifest'] dd")).to_have_text("valid")
    expect(page.get_by_role("progressbar", name="Face swap progress")).to_have_attribute("aria-valuenow", "100")
    page.wait_for_function("() => document.getElementById('fs-result-video').readyState >= 1")
    row = page.locator("#audit-rows tr").first
    expect(row).to_have_attribute("data-outcome", "succeeded")
    expect(row).to_contain_text("Test Subject")
    page.screenshot(path=str(screenshot_path("ui-faceswap.png", tmp_path)), full_page=True)

    # After a reload the audit log brings the result back.
    page.reload()
    page.wait_for_selector("body[data-ready='true']", state="attached")
    expect(page.locator("#fs-result")).to_be_hidden()
    page.locator("#audit-rows tr[data-outcome='succeeded']").filter(has_text="job").first.get_by_role(
        "button", name="Show the result"
    ).click()
    expect(page.locator("#fs-result-video")).to_be_visible()
    expect(page.locator("#fs-verify [data-field='label'] dd")).to_have_text("found (top-left)", timeout=60_000)


def _saturation(page: Any, selector: str) -> list[float]:
    """The mean colour saturation (max - min of R, G, B, 0-255) of each image `selector` finds."""
    return page.evaluate("""(selector) => [...document.querySelectorAll(selector)].map((img) => {
        const c = document.createElement("canvas");
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext("2d");
        ctx.drawImage(img, 0, 0);
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        let sum = 0;
        for (let i = 0; i < d.length; i += 4) {
            sum += Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]);
        }
        return sum / (d.length / 4);
    })""", selector)


def test_pick_the_face_to_replace_before_the_swap(server: str, page_factory: Any, clip: Path, tmp_path: Path) -> None:
    expect = sync_api.expect
    face = tmp_path / "grace_hopper.jpg"
    face.write_bytes(grace_hopper_jpeg())
    target = tmp_path / "two.png"
    target.write_bytes(png_bytes(two_faces()))
    flat = tmp_path / "flat.png"
    flat.write_bytes(flat_png())
    page = page_factory(f"{server}/faceswap")
    uploads: list[str] = []
    page.on("request", lambda r: r.method == "POST" and r.url.endswith("/api/uploads") and uploads.append(r.url))
    expect(page.locator("#fs-order")).to_have_text(
        "Faces are numbered left to right; with no choice, the largest face is replaced.")

    # The face photo's face, the one the swap will use.
    _fill_consent(page, face)
    expect(page.locator("#fs-source-status")).to_contain_text("will be used")
    expect(page.get_by_role("img", name="The face from the face photo that the swap will use")).to_be_visible()
    assert page.evaluate("() => document.getElementById('fs-source-thumb').naturalWidth") > 0

    # The target's faces: a thumbnail button each, left to right, and the boxes drawn on the preview.
    page.get_by_label("Target video or image (the person to change)").set_input_files(str(target))
    buttons = page.locator("#fs-face-list button")
    expect(buttons).to_have_text(["Face 0", "Face 1"])
    expect(page.locator("#fs-detect-status")).to_have_text("2 faces found in this picture.")
    expect(page.locator("#fs-choice")).to_have_text("Face 0 (the largest) will be replaced.")
    expect(page.get_by_role("img", name="The target picture, its faces outlined and numbered")).to_be_visible()
    expect(page.locator("#fs-boxes")).to_be_visible()
    size = page.evaluate("() => { const c = document.getElementById('fs-boxes'); return [c.width, c.height]; }")
    assert size == [800, 400]  # the boxes are drawn in the picture's own pixels
    boxes = [[int(v) for v in b.split(",")] for b in buttons.evaluate_all("bs => bs.map((b) => b.dataset.box)")]
    assert boxes[0][0] + boxes[0][2] < 440 <= boxes[1][0], boxes
    colour, grey = _saturation(page, "#fs-face-list button img")
    assert colour > 20 > 2 > grey, (colour, grey)  # Face 0 is the left (colour) one, Face 1 the right (grey) one
    for button in buttons.all():
        expect(button).to_have_attribute("aria-pressed", "false")

    face1 = page.get_by_role("button", name="Face 1", exact=True)
    face0 = page.get_by_role("button", name="Face 0", exact=True)
    face1.click()
    expect(face1).to_have_attribute("aria-pressed", "true")
    expect(face0).to_have_attribute("aria-pressed", "false")
    expect(page.get_by_label("Faces to replace")).to_have_value("index")
    expect(page.get_by_label("Face number")).to_have_value("1")
    expect(page.get_by_label("Face number")).to_be_enabled()
    expect(page.locator("#fs-choice")).to_have_text("Face 1 will be replaced.")
    # By keyboard, and by a click on the preview where the right face is.
    face0.focus()
    page.keyboard.press("Space")
    expect(face0).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_label("Face number")).to_have_value("0")
    box = page.locator("#fs-boxes").bounding_box()
    assert box is not None
    x, y, w, h = boxes[1]
    centre = {"x": box["width"] * (x + w / 2) / 800, "y": box["height"] * (y + h / 2) / 400}
    page.locator("#fs-boxes").click(position=centre)
    expect(face1).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_label("Face number")).to_have_value("1")
    # The face choice drives the buttons too.
    page.get_by_label("Faces to replace").select_option("all")
    expect(face1).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#fs-choice")).to_have_text("Every face will be replaced.")
    face1.click()
    page.locator("#fs-face-list").scroll_into_view_if_needed()
    page.locator("section.compose").screenshot(path=str(screenshot_path("faceswap-picker.png", tmp_path)))

    # A phone: nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    expect(face1).to_be_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    face_box = face1.bounding_box()
    assert face_box is not None and face_box["x"] + face_box["width"] <= 390 and face_box["height"] >= 44
    page.set_viewport_size({"width": 1280, "height": 900})

    # The swap asks for face 1, with the files the picker uploaded (each once).
    assert len(uploads) == 2, uploads
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/api/faceswap")) as request:
        page.get_by_role("button", name="Swap faces").click()
    body = request.value.post_data_json
    assert body["target_face"] == 1 and body["many_faces"] is False, body
    expect(page.locator("#fs-result-img")).to_be_visible(timeout=180_000)
    assert len(uploads) == 2, uploads

    # No face: said so, and no buttons.
    page.get_by_label("Target video or image (the person to change)").set_input_files(str(flat))
    expect(page.locator("#fs-detect-status")).to_have_text("No face found in this picture.")
    expect(buttons).to_have_count(0)
    expect(page.locator("#fs-boxes")).to_be_hidden()

    # A video: a frame number; the API's error names the field when there is no such frame.
    page.get_by_label("Target video or image (the person to change)").set_input_files(str(clip))
    expect(page.locator("#fs-detect-status")).to_have_text("1 face found in frame 0.")
    expect(buttons).to_have_text(["Face 0"])
    page.get_by_label("Video frame to look at").fill("10000")
    page.get_by_role("button", name="Find faces").click()
    expect(page.locator("#fs-detect-error")).to_contain_text("frame")
    expect(buttons).to_have_count(0)
    page.get_by_label("Video frame to look at").fill("3")
    page.get_by_label("Video frame to look at").press("Enter")
    expect(page.locator("#fs-detect-status")).to_have_text("1 face found in frame 3.")
    expect(page.locator("#fs-detect-error")).to_be_hidden()
    expect(page.locator("#fs-result")).to_be_visible()  # Enter in the frame number is not a swap
