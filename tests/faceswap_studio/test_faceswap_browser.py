"""The face-swap page in a real headless Chromium against a real server process, with a fake camera
that plays a clip built from the astronaut photo (NASA, public domain)."""

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
from fs_media import astronaut_bgr, grace_hopper_jpeg

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
    # Read the figure and its text at one instant: the page updates both with every frame.
    raw, text = page.evaluate("() => { const e = document.getElementById('live-fps'); "
                              "return [e.dataset.fps, e.textContent]; }")
    fps = float(raw)
    shown, unit = text.split()
    assert fps > 0 and unit == "fps" and abs(float(shown) - fps) <= 0.051, (raw, text)
    # The frames shown are the server's: decoded JPEGs carrying the label.
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
    expect(box.locator("[data-field='watermark'] dd")).to_have_text("found")
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
