"""The image editor panel in a real headless Chromium against a real server: open a picture, paint a mask with
the mouse or a finger, undo, inpaint end to end, errors named beside the panel; and the request fields of outpaint,
LoRAs, ControlNet and the hires fix. The test server runs the built-in model, which takes no LoRA or ControlNet:
there the model lists and the answer to the request are stood in by page.route, and the request is what is checked
(the ControlNet preview is the server's own)."""

from __future__ import annotations

import io
import json
import os
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from helpers import screenshot_path

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

pytestmark = pytest.mark.browser
sync_api.expect.set_options(timeout=30_000)

LORAS = [
    {"id": "detail-tweaker", "name": "Detail tweaker", "kind": "lora", "family": "sd1"},
    {"id": "xl-ink", "name": "XL ink", "kind": "lora", "family": "sdxl"},
]
CONTROLNETS = [{"id": "canny-sd15", "name": "Canny SD 1.5", "kind": "controlnet", "family": "sd1"}]
UPSCALERS = [{"id": "realesrgan-x4", "name": "Real-ESRGAN x4", "kind": "upscaler", "family": "upscaler"}]
FIELD_KEYS = {"Steps": "steps", "Width": "width", "Height": "height"}
NO_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"
MASK_PIXELS = (
    "() => { const c = document.getElementById('ed-mask'); "
    "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; "
    "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"
)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def _image(server: str, asset_id: str, mode: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(_get(f"{server}/api/assets/{asset_id}"))).convert(mode))


def _generate(server: str, model_setup: dict[str, Any], prompt: str, seed: int) -> str:
    """An image made through the API (the editor opens it from the gallery); its asset id."""
    body = {"prompt": prompt, "seed": seed} | {FIELD_KEYS[k]: int(v) for k, v in model_setup["fields"].items()}
    request = urllib.request.Request(
        f"{server}/api/images", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        job_id = json.load(r)["job_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = json.loads(_get(f"{server}/api/jobs/{job_id}"))
        if job["status"] in ("succeeded", "failed", "cancelled"):
            assert job["status"] == "succeeded", job
            return job["assets"][0]
        time.sleep(0.2)
    raise AssertionError("the image job did not finish")


def _png(path: Path, size: tuple[int, int]) -> Path:
    """A picture with structure (a gradient and a square) to edit."""
    w, h = size
    x, y = np.meshgrid(np.linspace(0, 255, w), np.linspace(0, 255, h))
    rgb = np.stack([x, y, np.full_like(x, 128)], axis=-1).astype(np.uint8)
    rgb[h // 4 : h // 2, w // 4 : w // 2] = (250, 250, 250)
    Image.fromarray(rgb).save(path)
    return path


def _fill_form(page: Any, fields: dict[str, str]) -> None:
    if not page.locator("#advanced").evaluate("d => d.open"):
        page.get_by_text("Advanced settings").click()
    for label, value in fields.items():
        page.get_by_label(label, exact=True).fill(value)


def _set_range(locator: Any, value: str) -> None:
    locator.evaluate(
        "(input, v) => { input.value = v; input.dispatchEvent(new Event('input', {bubbles: true})); }", value
    )


def _to_screen(page: Any, x: float, y: float) -> tuple[float, float]:
    """Picture pixel (x, y) on the screen: the mask canvas is scaled to fit (object-fit: contain) and may hold
    an outpaint frame around the picture."""
    canvas = page.locator("#ed-mask")
    canvas.scroll_into_view_if_needed()
    box = None
    while box != (box := canvas.bounding_box()):  # until a smooth scroll has settled
        time.sleep(0.05)
    w, h = canvas.evaluate("c => [c.width, c.height]")
    left = int(page.get_by_label("Left", exact=True).input_value() or 0)
    top = int(page.get_by_label("Top", exact=True).input_value() or 0)
    scale = min(box["width"] / w, box["height"] / h)
    x0 = box["x"] + (box["width"] - w * scale) / 2
    y0 = box["y"] + (box["height"] - h * scale) / 2
    return x0 + (x + left) * scale, y0 + (y + top) * scale


def _stroke(page: Any, points: list[tuple[float, float]]) -> None:
    """A mouse stroke through picture pixels `points`."""
    page.mouse.move(*_to_screen(page, *points[0]))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*_to_screen(page, *point), steps=4)
    page.mouse.up()


def _open_upload(page: Any, png: Path) -> None:
    page.get_by_label("Edit an image (inpaint, outpaint)").set_input_files(str(png))
    sync_api.expect(page.get_by_role("region", name="Edit image")).to_be_visible()
    sync_api.expect(page.locator("#ed-source")).to_contain_text(png.name)


def _json_answer(items: Any) -> Any:
    body = json.dumps(items)
    return lambda route: route.fulfill(status=200, content_type="application/json", body=body)


def _route_models(page: Any) -> None:
    """Stand-ins for the add-on model lists (the test server has none installed); then reload so that the page
    asks again."""
    for kind, items in {"lora": LORAS, "controlnet": CONTROLNETS, "upscaler": UPSCALERS}.items():
        page.route(re.compile(rf"/api/models\?kind={kind}$"), _json_answer(items))
    page.reload()
    page.wait_for_selector("body[data-ready='true']", state="attached")


def _shoot(page: Any, name: str, tmp_path: Path, full_page: bool = False) -> None:
    """A picture for the docs, when GENSTUDIO_SCREENSHOTS names a folder (docs/images)."""
    if os.environ.get("GENSTUDIO_SCREENSHOTS"):
        page.screenshot(path=str(screenshot_path(name, tmp_path)), full_page=full_page)


def test_inpaint_a_gallery_image_end_to_end(
    server: str, model_setup: dict[str, Any], open_page: Any, tmp_path: Path
) -> None:
    expect = sync_api.expect
    original = _generate(server, model_setup, "a red heart", seed=3)
    page = open_page(server)
    card = page.locator(f"#gallery .card[data-asset-id='{original}']")
    card.get_by_role("button", name="Edit").click()
    editor = page.get_by_role("region", name="Edit image")
    expect(editor).to_be_visible()
    expect(page.locator("#editor-title")).to_be_focused()
    expect(page.locator("#ed-source")).to_contain_text("seed 3")
    # An empty prompt takes the picture's.
    expect(page.get_by_label("Prompt", exact=True)).to_have_value("a red heart")
    size = Image.open(io.BytesIO(_get(f"{server}/api/assets/{original}"))).size
    assert page.locator("#ed-mask").evaluate("c => [c.width, c.height]") == list(size)
    assert page.locator("#ed-mask").evaluate("c => getComputedStyle(c).touchAction") == "none"

    w, h = size
    brush = w // 10
    _set_range(page.get_by_label("Brush size"), str(brush))
    expect(page.locator("#ed-brush-value")).to_have_text(f"{brush} px")
    _stroke(page, [(w * 0.35, h * 0.5), (w * 0.5, h * 0.5), (w * 0.65, h * 0.5)])
    painted = page.evaluate(MASK_PIXELS)
    assert painted > 0
    _fill_form(page, model_setup["fields"])
    page.get_by_text("Advanced settings").click()  # closed again: the editor in view for the screenshot
    _shoot(page, "editor-desktop.png", tmp_path, full_page=True)

    with page.expect_request(lambda r: r.url.endswith("/api/images") and r.method == "POST") as sent:
        editor.get_by_role("button", name="Run edit").click()
    body = sent.value.post_data_json
    assert body["init_image"] == original and body["prompt"] == "a red heart"
    assert body["strength"] == 0.75 and body["mask_blur"] == 4
    assert (body["width"], body["height"]) == size
    assert not {"inpaint_area", "outpaint", "hires", "loras", "controlnets"} & body.keys(), body

    # The mask that went up: the picture's size, white along the stroke, black elsewhere.
    mask = _image(server, body["mask"], "L")
    assert mask.shape == (h, w)
    assert mask[h // 2, w // 2] == 255 and mask[h // 2, int(w * 0.36)] == 255
    assert mask[: h // 4].max() == 0 and mask[-h // 4 :].max() == 0 and mask[:, : w // 5].max() == 0
    assert np.count_nonzero(mask > 127) == pytest.approx(painted, rel=0.15)

    job = page.locator("#jobs .job").first
    expect(job.locator(".job-params")).to_contain_text("from an image, strength 0.75 · inpaint, mask blur 4")
    expect(job.locator(".job-status")).to_have_text("Done · 1 image")
    result_card = page.locator("#gallery .card").first
    expect(result_card).not_to_have_attribute("data-asset-id", original)
    result_id = result_card.get_attribute("data-asset-id")
    job_id = job.get_attribute("data-job-id")
    params = json.loads(_get(f"{server}/api/jobs/{job_id}"))["params"]
    assert params["init_image"] == original and params["mask"] == body["mask"]

    # The server keeps what the mask leaves black: far from the stroke the result is the original (up to the
    # invisible watermark).
    before, after = _image(server, original, "RGB").astype(int), _image(server, result_id, "RGB").astype(int)
    assert after.shape == before.shape
    far = np.ones((h, w), bool)
    far[int(h * 0.5 - brush * 1.5) : int(h * 0.5 + brush * 1.5), int(w * 0.35 - brush) : int(w * 0.65 + brush)] = False
    diff = np.abs(after - before)[far]
    assert diff.mean() < 3 and np.percentile(diff, 99) < 24, (diff.mean(), np.percentile(diff, 99))
    # Nothing lost: the mask is still painted for another run.
    assert page.evaluate(MASK_PIXELS) == painted
    # Close gives the focus back to the button that opened the editor.
    editor.get_by_role("button", name="Close editor").click()
    expect(editor).to_be_hidden()
    expect(card.get_by_role("button", name="Edit")).to_be_focused()


def test_mask_undo_redo_clear_invert_and_erase(open_page: Any, server: str, tmp_path: Path) -> None:
    expect = sync_api.expect
    page = open_page(server)
    _open_upload(page, _png(tmp_path / "odd-size.png", (203, 117)))
    assert page.locator("#ed-mask").evaluate("c => [c.width, c.height]") == [203, 117]
    undo = page.get_by_role("button", name="Undo")
    redo = page.get_by_role("button", name="Redo")
    expect(undo).to_be_disabled()
    _set_range(page.get_by_label("Brush size"), "6")

    # 22 strokes, each undone in turn: an empty mask again.
    for i in range(22):
        _stroke(page, [(8 + i * 8, 20), (8 + i * 8, 90)])
    full = page.evaluate(MASK_PIXELS)
    assert full > 22 * 60 * 4
    counts = []
    for _ in range(22):
        undo.click()
        counts.append(page.evaluate(MASK_PIXELS))
    assert counts == sorted(counts, reverse=True) and counts[0] < full and counts[-1] == 0
    expect(undo).to_be_disabled()
    redo.click()
    one = page.evaluate(MASK_PIXELS)
    assert one > 0
    # Keyboard: Ctrl+Z in the panel, Ctrl+Shift+Z with the focus nowhere in particular (as after painting).
    page.get_by_role("button", name="Paint", exact=True).focus()
    page.keyboard.press("Control+z")
    assert page.evaluate(MASK_PIXELS) == 0
    page.evaluate("() => document.activeElement.blur()")
    page.keyboard.press("Control+Shift+z")
    assert page.evaluate(MASK_PIXELS) == one

    # Erase takes paint away; Clear empties and can be undone; Invert selects what was not painted.
    _set_range(page.get_by_label("Brush size"), "20")
    _stroke(page, [(40, 58), (160, 58)])
    painted = page.evaluate(MASK_PIXELS)
    page.get_by_role("button", name="Erase", exact=True).click()
    expect(page.get_by_role("button", name="Erase", exact=True)).to_have_attribute("aria-pressed", "true")
    _stroke(page, [(40, 58), (100, 58)])
    assert 0 < page.evaluate(MASK_PIXELS) < painted
    page.get_by_role("button", name="Paint", exact=True).click()
    page.get_by_role("button", name="Clear mask").click()
    assert page.evaluate(MASK_PIXELS) == 0
    undo.click()
    assert page.evaluate(MASK_PIXELS) > 0
    page.get_by_role("button", name="Clear mask").click()
    page.get_by_role("button", name="Invert mask").click()
    assert page.evaluate(MASK_PIXELS) == 203 * 117


def test_errors_show_beside_the_panel_and_nothing_is_lost(open_page: Any, server: str, tmp_path: Path) -> None:
    expect = sync_api.expect
    page = open_page(server)
    _open_upload(page, _png(tmp_path / "scene.png", (128, 96)))
    page.get_by_label("Prompt", exact=True).fill("a boat on a lake")
    _stroke(page, [(30, 40), (90, 40)])
    painted = page.evaluate(MASK_PIXELS)
    error = page.locator("#ed-error")
    run = page.get_by_role("button", name="Run edit")

    # Checked here first: an outpaint side that is not a multiple of 8 is named, and nothing is sent.
    page.get_by_label("Left", exact=True).fill("12")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)
    run.click()
    expect(error).to_contain_text("outpaint.left: must be a multiple of 8 (got 12)")
    expect(page.get_by_label("Left", exact=True)).to_have_attribute("aria-invalid", "true")
    assert sent == []
    page.get_by_label("Left", exact=True).fill("0")

    # The server's 422 names the field: shown beside Run, the field marked, the mask still painted.
    page.get_by_label("Mask blur (px)").fill("100")
    run.click()
    expect(error).to_contain_text("mask_blur")
    expect(error).to_contain_text("64")
    expect(page.get_by_label("Mask blur (px)")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Mask blur (px)")).to_have_value("100")
    assert page.evaluate(MASK_PIXELS) == painted
    assert page.get_by_label("Prompt", exact=True).input_value() == "a boat on a lake"
    expect(page.locator("#jobs .job")).to_have_count(0)


def test_outpaint_loras_controlnet_and_hires_request_fields(open_page: Any, server: str, tmp_path: Path) -> None:
    expect = sync_api.expect
    page = open_page(server)
    _route_models(page)
    bodies: list[dict[str, Any]] = []

    def answer_422(route: Any) -> None:
        bodies.append(route.request.post_data_json)
        detail = [{"loc": ["body", "outpaint", "left"], "msg": "stand-in refusal", "type": "value_error"}]
        route.fulfill(status=422, content_type="application/json", body=json.dumps({"detail": detail}))

    page.route(re.compile(r"/api/images$"), answer_422)
    _open_upload(page, _png(tmp_path / "room.png", (160, 96)))
    page.get_by_label("Prompt", exact=True).fill("a cosy room")

    # Outpaint: the frame grows around the picture.
    page.get_by_label("Left", exact=True).fill("64")
    page.get_by_label("Bottom", exact=True).fill("32")
    expect(page.locator("#ed-size")).to_have_text("160×96 becomes 224×128.")
    expect(page.locator("#ed-strength-value")).to_have_text("0.85")  # outpainting's default, until set
    assert page.locator("#ed-mask").evaluate("c => [c.width, c.height]") == [224, 128]
    _stroke(page, [(20, 30), (60, 30)])  # picture pixels: the frame offset is accounted for
    page.get_by_label("Only masked (sharper detail)").check()
    _set_range(page.get_by_label("Strength", exact=True), "0.6")
    expect(page.locator("#ed-strength-value")).to_have_text("0.60")

    # LoRAs: two added, one weight set from the keyboard.
    page.get_by_text("LoRAs, hires fix, ControlNet").click()
    page.get_by_label("LoRA to add").select_option("detail-tweaker")
    page.get_by_role("button", name="Add LoRA").click()
    weight = page.get_by_label("Detail tweaker weight")
    expect(weight).to_be_focused()
    weight.press("ArrowRight")
    weight.press("ArrowRight")  # 0.8 + 2 x 0.05
    page.get_by_label("LoRA to add").select_option("xl-ink")
    page.get_by_role("button", name="Add LoRA").click()
    _set_range(page.get_by_label("XL ink weight"), "-0.5")
    expect(page.locator("#loras .lora-note").nth(1)).to_contain_text("Made for sdxl")

    # ControlNet: the editor's picture as control image, canny, weight and end set.
    page.get_by_role("button", name="Add ControlNet unit").click()
    unit = page.locator("#cn-units .cn-unit").first
    expect(unit.get_by_role("heading")).to_have_text("ControlNet unit 1")
    expect(unit.get_by_label("The editor's image")).to_be_checked()
    unit.get_by_label("Preprocessor").select_option("canny")
    _set_range(unit.get_by_label("Weight"), "1.25")
    unit.get_by_label("End (0-1)").fill("0.8")

    # A second unit with a control image of its own, uploaded.
    page.get_by_role("button", name="Add ControlNet unit").click()
    second = page.locator("#cn-units .cn-unit").nth(1)
    second.get_by_label("An upload").check()
    second.get_by_label("Control image file of ControlNet unit 2").set_input_files(
        str(_png(tmp_path / "sketch.png", (64, 64)))
    )
    expect(second).to_have_attribute("data-upload", re.compile(r"."))
    sketch = second.get_attribute("data-upload")

    # The hires fix is for text to image: on, but not part of the edit.
    page.get_by_label("Generate, upscale, then refine").check()
    page.get_by_label("Upscaler").select_option("realesrgan-x4")

    page.get_by_role("button", name="Run edit").click()
    expect(page.locator("#ed-error")).to_contain_text("outpaint.left: stand-in refusal")
    expect(page.get_by_label("Left", exact=True)).to_have_attribute("aria-invalid", "true")
    body = bodies[-1]
    init = body["init_image"]
    assert body["outpaint"] == {"left": 64, "right": 0, "top": 0, "bottom": 32}
    assert (body["width"], body["height"]) == (160, 96)  # the picture's size; outpaint adds to it
    assert body["inpaint_area"] == "masked" and body["strength"] == 0.6 and body["mask"]
    assert body["loras"] == [{"id": "detail-tweaker", "weight": 0.9}, {"id": "xl-ink", "weight": -0.5}]
    assert body["controlnets"] == [
        {"model": "canny-sd15", "image": init, "preprocessor": "canny", "weight": 1.25, "start": 0, "end": 0.8},
        {"model": "canny-sd15", "image": sketch, "preprocessor": "none", "weight": 1, "start": 0, "end": 1},
    ]
    assert sketch != init and Image.open(io.BytesIO(_get(f"{server}/api/assets/{sketch}"))).size == (64, 64)
    assert "hires" not in body
    mask = _image(server, body["mask"], "L")
    assert mask.shape == (96, 160) and mask[30, 40] == 255 and mask[80, 140] == 0

    # Generate (text to image) sends the hires fix, the LoRAs and the unit, and no editor fields.
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#form-error")).to_contain_text("stand-in refusal")
    body = bodies[-1]
    assert body["hires"] == {"scale": 2, "strength": 0.5, "upscaler": "realesrgan-x4"}
    assert len(body["loras"]) == 2 and [u["image"] for u in body["controlnets"]] == [init, sketch]
    assert not {"init_image", "mask", "outpaint", "strength"} & body.keys()

    # A unit's preview: the server's preprocessed picture (canny edges of the editor's image)...
    with page.expect_response(re.compile(r"/api/images/preprocess$")) as answer:
        unit.get_by_role("button", name="Preview the control map of ControlNet unit 1").click()
    assert answer.value.request.post_data_json == {"image": init, "preprocessor": "canny"}
    preview = unit.get_by_role("img", name="Control map of ControlNet unit 1 (canny)")
    expect(preview).to_be_visible()
    assert preview.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [160, 96]
    # ...or the server's error text (here: the upload is gone).
    urllib.request.urlopen(urllib.request.Request(f"{server}/api/assets/{sketch}", method="DELETE"), timeout=30)
    second.get_by_role("button", name="Preview the control map of ControlNet unit 2").click()
    expect(second.get_by_role("alert")).to_have_text(re.compile(rf"^Preview failed: image: .*{sketch}"))

    # Removing a LoRA and the unit leaves them out of the next request.
    page.get_by_role("button", name="Remove LoRA XL ink").click()
    page.get_by_role("button", name="Remove ControlNet unit 1").click()
    expect(page.locator("#cn-units .cn-unit")).to_have_count(1)
    expect(page.locator("#cn-units .cn-title")).to_have_text("ControlNet unit 1")  # the upload's unit, renumbered
    page.get_by_role("button", name="Remove ControlNet unit 1").click()
    with page.expect_response(re.compile(r"/api/images$")):
        page.get_by_role("button", name="Run edit").click()
    assert bodies[-1]["loras"] == [{"id": "detail-tweaker", "weight": 0.9}] and "controlnets" not in bodies[-1]


def test_no_add_ons_installed_says_how_to_add_them(open_page: Any, server: str) -> None:
    expect = sync_api.expect
    page = open_page(server)  # the server's own lists: nothing installed
    page.get_by_text("LoRAs, hires fix, ControlNet").click()
    expect(page.locator("#lora-status")).to_contain_text("No LoRA is installed yet.")
    expect(page.locator("#lora-status code")).to_have_text("genstudio models add FILE --kind lora")
    expect(page.get_by_role("button", name="Add LoRA")).to_be_hidden()
    expect(page.locator("#cn-status code")).to_have_text("genstudio models add FILE --kind controlnet")
    expect(page.get_by_role("button", name="Add ControlNet unit")).to_be_disabled()
    expect(page.get_by_label("Upscaler").locator("option")).to_have_text(["Latent", "Lanczos"])


def test_phone_width_touch_painting(open_page: Any, server: str, tmp_path: Path) -> None:
    expect = sync_api.expect
    page = open_page(
        server, viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    _route_models(page)
    _open_upload(page, _png(tmp_path / "portrait.png", (192, 256)))
    assert page.evaluate(NO_SCROLL)

    # A finger paints (a tap is a touch pointer's down and up).
    canvas = page.locator("#ed-mask").bounding_box()
    assert canvas["x"] >= 0 and canvas["x"] + canvas["width"] <= 390
    page.touchscreen.tap(*_to_screen(page, 96, 128))
    assert page.evaluate(MASK_PIXELS) > 0
    page.touchscreen.tap(*_to_screen(page, 60, 200))

    # Every control fits the width, the add-ons open too.
    page.get_by_text("LoRAs, hires fix, ControlNet").click()
    page.get_by_role("button", name="Add LoRA").click()
    page.get_by_role("button", name="Add ControlNet unit").click()
    page.get_by_label("Generate, upscale, then refine").check()
    page.get_by_label("Left", exact=True).fill("32")
    assert page.evaluate(NO_SCROLL)
    outside = page.evaluate(
        "() => [...document.querySelectorAll('#editor button, #editor input, #editor select, #extras button, "
        "#extras input, #extras select')].filter(e => e.offsetParent && e.getBoundingClientRect().right > "
        "window.innerWidth + 0.5).map(e => e.id || e.textContent)"
    )
    assert outside == []
    page.get_by_label("Left", exact=True).fill("0")
    page.get_by_text("LoRAs, hires fix, ControlNet").click()
    page.locator("#editor").scroll_into_view_if_needed()
    page.evaluate("() => document.getElementById('editor').scrollIntoView()")
    _shoot(page, "editor-phone.png", tmp_path)
    expect(page.get_by_role("button", name="Run edit")).to_be_enabled()


def test_upscale_a_gallery_image(server: str, model_setup: dict[str, Any], open_page: Any) -> None:
    """"Upscale ×2" on a card: a job whose result, twice the size, joins the gallery (Lanczos when no upscaler
    model is installed, as on the test server)."""
    expect = sync_api.expect
    original = _generate(server, model_setup, "a blue star", seed=5)
    page = open_page(server)
    card = page.locator(f"#gallery .card[data-asset-id='{original}']")
    with page.expect_request(lambda r: r.url.endswith("/api/images/upscale")) as sent:
        card.get_by_role("button", name="Upscale ×2").click()
    assert sent.value.post_data_json == {"image": original, "scale": 2, "upscaler": "lanczos"}
    job = page.locator("#jobs .job").first
    expect(job.locator(".job-params")).to_contain_text("upscale ×2 (lanczos)")
    expect(job.locator(".job-status")).to_have_text("Done · 1 image")
    result = page.locator("#gallery .card").first
    expect(result).not_to_have_attribute("data-asset-id", original)
    expect(result.locator(".card-prompt")).to_have_text("Upscaled ×2 (lanczos)")
    w, h = Image.open(io.BytesIO(_get(f"{server}/api/assets/{original}"))).size
    big = _image(server, result.get_attribute("data-asset-id"), "RGB")
    assert big.shape[:2] == (2 * h, 2 * w)


def test_verify_a_copy_recovers_credentials_and_unmarked_is_unknown(
    server: str, model_setup: dict[str, Any], open_page: Any, tmp_path: Path
) -> None:
    """The page's "Verify a file": a smaller JPEG copy of a result (its manifest gone) shows the manifest the
    studio kept, recovered through the watermark; a photo never marked reads "unknown", with what that means."""
    expect = sync_api.expect
    original = _generate(server, model_setup, "a green leaf", seed=9)
    picture = Image.open(io.BytesIO(_get(f"{server}/api/assets/{original}"))).convert("RGB")
    copy = tmp_path / "copy.jpg"
    picture.resize((picture.width * 3 // 4, picture.height * 3 // 4), Image.LANCZOS).save(copy, "JPEG", quality=80)
    page = open_page(server)
    box = page.locator("#verify-file-result")
    page.get_by_label("Verify a file").set_input_files(str(copy))
    expect(box.locator("[data-field='manifest'] dd")).to_contain_text("recovered")
    expect(box.locator("[data-field='ai-generated'] dd")).to_have_text("yes")
    expect(box).to_contain_text("carries no credentials of its own")
    plain = _png(tmp_path / "never-marked.png", (320, 240))
    page.get_by_label("Verify a file").set_input_files(str(plain))
    expect(box.locator("[data-field='ai-generated'] dd")).to_have_text("unknown")
    expect(box).to_contain_text("proves nothing")


@pytest.fixture
def addon_server(serve: Any, tiny_sd_dir: Path, tmp_path: Path) -> Any:
    """A server whose data dir holds a toy LoRA and a toy upscaler, registered with the CLI as a user would."""
    import subprocess
    import sys

    from diffusers import StableDiffusionPipeline

    from toy_addons import save_peft_lora, save_upscaler

    data = tmp_path / "data"
    lora = save_peft_lora(StableDiffusionPipeline.from_pretrained(tiny_sd_dir), tmp_path / "ink-style.safetensors")
    upscaler = save_upscaler(tmp_path / "toy-2x.safetensors")
    for path, kind in ((lora, "lora"), (upscaler, "upscaler")):
        subprocess.run([sys.executable, "-m", "genstudio.cli", "models", "add", str(path), "--kind", kind,
                        "--data-dir", str(data)], check=True, capture_output=True)
    yield from serve(data)


def test_models_page_lists_add_ons_and_upscale_uses_the_model(
    addon_server: str, model_setup: dict[str, Any], open_page: Any
) -> None:
    expect = sync_api.expect
    page = open_page(f"{addon_server}/models")
    addons = page.locator("#addons tr")
    expect(addons).to_have_count(2)
    expect(addons.filter(has_text="ink-style")).to_contain_text("LoRA")
    expect(addons.filter(has_text="toy-2x")).to_contain_text("upscaler")
    expect(addons.filter(has_text="toy-2x")).to_contain_text("any model")
    expect(page.locator("#models tr").filter(has_text="ink-style")).to_have_count(0)  # not an image model
    expect(page.locator("#addons-empty")).to_be_hidden()
    page.on("dialog", lambda d: d.accept())
    addons.filter(has_text="ink-style").get_by_role("button", name="Remove ink-style").click()
    expect(addons).to_have_count(1)
    # "Upscale ×2" on a gallery card goes through the installed upscaler model.
    original = _generate(addon_server, model_setup, "a red heart", seed=2)
    page = open_page(addon_server)
    card = page.locator(f"#gallery .card[data-asset-id='{original}']")
    with page.expect_request(lambda r: r.url.endswith("/api/images/upscale")) as sent:
        card.get_by_role("button", name="Upscale ×2").click()
    assert sent.value.post_data_json["upscaler"] == "toy-2x"
    expect(page.locator("#jobs .job").first.locator(".job-status")).to_have_text("Done · 1 image")


def test_a_png_brings_back_its_loras_and_hires_fix(open_page: Any, server: str, tmp_path: Path) -> None:
    """A1111 text in a PNG with LoRA tags, a hires fix and a ControlNet unit: the form gets the LoRAs that are
    installed (with their weights) and the hires fix back, and says what it could not restore."""
    from PIL import PngImagePlugin

    expect = sync_api.expect
    page = open_page(server)
    _route_models(page)
    text = ("a lighthouse <lora:detail-tweaker:0.6> <lora:not-here:1>\nSteps: 20, Sampler: Euler, CFG scale: 7, "
            "Seed: 5, Size: 512x512, Model: builtin:emoji-tiny, Denoising strength: 0.4, Hires upscale: 2, "
            "Hires steps: 12, Hires upscaler: realesrgan-x4, "
            'ControlNet 0: "Module: canny, Model: canny-sd15, Weight: 0.8, Guidance Start: 0, Guidance End: 1"')
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    png = tmp_path / "a1111.png"
    Image.new("RGB", (64, 64), (90, 120, 150)).save(png, pnginfo=info)
    expect(page.locator("#lora-pick option")).to_have_count(len(LORAS))
    page.get_by_label("Load settings from a PNG").set_input_files(str(png))
    source = page.locator("#settings-source")
    expect(source).to_contain_text("a1111.png")
    expect(source).to_contain_text("LoRA “not-here” is not installed here")
    expect(source).to_contain_text("ControlNet unit not restored")
    lora = page.locator("#loras [data-lora='detail-tweaker'] input")
    expect(lora).to_have_value("0.6")
    expect(page.locator("#loras > *")).to_have_count(1)
    expect(page.get_by_label("Generate, upscale, then refine")).to_be_checked()
    expect(page.get_by_label("Upscale by (1-4)")).to_have_value("2")
    expect(page.get_by_label("Refine strength (0-1)")).to_have_value("0.4")
    expect(page.get_by_label("Upscaler")).to_have_value("realesrgan-x4")
