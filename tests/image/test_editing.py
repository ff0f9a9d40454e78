"""Editing beyond img2img (API v2): outpaint, "only masked" inpainting, the hires fix and upscalers, on the
built-in model and on SD pipelines; the PNG records each as A1111 writes it and reads it back."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from helpers import wait_job
from toy_addons import save_upscaler


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def upload(client: TestClient, im: Image.Image) -> str:
    r = client.post("/api/uploads", files={"file": ("x.png", png(im), "image/png")})
    assert r.status_code == 201, r.text
    return r.json()["asset_id"]


def run(client: TestClient, body: dict, url: str = "/api/images") -> tuple[Image.Image, dict]:
    r = client.post(url, json=body)
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["job_id"], timeout=180)
    assert job["status"] == "succeeded", job["error"]
    data = client.get(f"/api/assets/{job['assets'][0]}").content
    im = Image.open(io.BytesIO(data))
    return im.convert("RGB"), dict(im.text)


def two_tone(w: int, h: int) -> Image.Image:
    """Red on the left half, blue on the right, a white disc in the middle."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = (200, 30, 30)
    arr[:, w // 2:] = (30, 30, 200)
    yy, xx = np.mgrid[0:h, 0:w]
    arr[(xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (min(w, h) / 5) ** 2] = 255
    return Image.fromarray(arr)


def params(**kw: Any) -> Any:
    from genstudio.image.params import ImageParams

    base = dict(prompt="a cat", negative_prompt="", style=None, model="tiny", seed=1, steps=4, guidance=1.0,
                width=64, height=64, batch=1, sampler="ddim", tile=False)
    return ImageParams(**{**base, **kw})


@pytest.fixture(scope="module")
def tiny_pipe(tiny_sd_dir: Path) -> Any:
    from genstudio.image.backend import load_pipeline
    from genstudio.image.models import ModelEntry

    return load_pipeline(ModelEntry(id="tiny", format="folder", source=str(tiny_sd_dir)))


# ---- outpaint ----------------------------------------------------------------------------------------------

def test_outpaint_fill_continues_the_edges_not_grey() -> None:
    from genstudio.image.edit import extend_canvas
    from genstudio.image.params import Outpaint

    canvas, mask = extend_canvas(two_tone(96, 64), Outpaint(left=32, right=32, top=16, bottom=0))
    assert canvas.size == mask.size == (160, 80)
    arr, m = np.asarray(canvas, float), np.asarray(mask)
    assert m[16:, 32:128].max() == 0 and m[:, :32].min() == 255 and m[:16].min() == 255
    left, right = arr[30:70, :24].mean(axis=(0, 1)), arr[30:70, -24:].mean(axis=(0, 1))
    assert left[0] > 120 and left[2] < 90, left  # red continues to the left
    assert right[2] > 120 and right[0] < 90, right  # blue to the right
    assert arr[30:70, :24].std() > 4  # a little texture, not a flat fill


def test_outpaint_grows_the_canvas_and_keeps_the_original(client: TestClient) -> None:
    start = two_tone(96, 64)
    asset = upload(client, start)
    out, text = run(client, {"prompt": "a wide view", "steps": 6, "seed": 3, "init_image": asset,
                             "outpaint": {"left": 32, "right": 16, "top": 8, "bottom": 0}})
    assert out.size == (96 + 48, 64 + 8)
    inner = np.asarray(out, int)[8:, 32:128]
    diff = np.abs(inner - np.asarray(start, int))
    assert diff.max() <= 16 and diff.mean() < 1.5  # only the watermark's levels
    assert 'Outpaint: "32,16,8,0"' in text["parameters"]
    # The built-in model outpaints too, at its own size, and says the output size it made.
    out, _ = run(client, {"prompt": "a red heart", "model": "builtin:emoji-tiny", "steps": 8, "seed": 3,
                          "init_image": asset, "outpaint": {"left": 64, "right": 0, "top": 0, "bottom": 0}})
    assert out.size == (256 + 64, 256)


def test_outpaint_errors_name_the_field(client: TestClient) -> None:
    asset = upload(client, two_tone(64, 64))
    r = client.post("/api/images", json={"prompt": "x", "init_image": asset, "outpaint": {"left": 12}})
    assert r.status_code == 422 and "outpaint.left" in r.text and "multiple of 8" in r.text
    r = client.post("/api/images", json={"prompt": "x", "init_image": asset, "width": 1024, "height": 1024,
                                         "outpaint": {"left": 1024}})
    assert r.status_code == 422 and "outpaint" in r.text and "GENSTUDIO_MAX_SIZE" in r.text
    r = client.post("/api/images", json={"prompt": "x", "outpaint": {"left": 8}})
    assert r.status_code == 422 and "init_image" in r.text


# ---- inpaint only masked -----------------------------------------------------------------------------------

def test_masked_box_fits_the_mask_and_the_aspect() -> None:
    from genstudio.image.edit import masked_box

    mask = Image.new("L", (400, 300), 0)
    mask.paste(255, (300, 40, 340, 60))
    box = masked_box(mask, aspect=1.0)
    assert box is not None
    x0, y0, x1, y1 = box
    assert x0 <= 300 - 32 and x1 >= 340 + 32 and y0 <= 40 - 32 + 1 and 0 <= y0 and x1 <= 400
    assert x1 - x0 == y1 - y0  # square, like the generation size
    assert masked_box(Image.new("L", (64, 64), 0), 1.0) is None


def test_only_masked_repaints_a_crop_at_full_resolution(tiny_pipe: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """With "masked", the pipeline sees the crop around the mask enlarged to the generation size (so a
    small mask gets every pixel of it), and everything outside the mask is kept exactly."""
    from genstudio.image import backend

    seen: list[Image.Image] = []
    sample = backend._sample

    def spy(*a: Any, **kw: Any) -> Any:
        seen.append(kw["init"])
        return sample(*a, **kw)

    monkeypatch.setattr(backend, "_sample", spy)
    start = two_tone(256, 256)
    mask = Image.new("L", (256, 256), 0)
    mask.paste(255, (200, 200, 230, 230))
    p = params(width=256, height=256, init_image="x", strength=0.9, mask="y", mask_blur=2, inpaint_area="masked")
    made = backend.generate(tiny_pipe, p, prompt="a cat", negative_prompt="", init=start, mask=mask)[0]
    crop = np.asarray(seen[0], float)
    # The crop is around the mask (the lower-right: blue and white), not the whole red/blue picture.
    assert seen[0].size == (256, 256) and crop[..., 0].mean() < 150 and crop[..., 2].mean() > 150
    keep = np.asarray(mask) == 0
    assert np.array_equal(np.asarray(made)[keep], np.asarray(start)[keep])
    assert not np.array_equal(np.asarray(made)[205:225, 205:225], np.asarray(start)[205:225, 205:225])
    whole = backend.generate(tiny_pipe, p.model_copy(update={"inpaint_area": "whole"}), prompt="a cat",
                             negative_prompt="", init=start, mask=mask)[0]
    assert np.asarray(seen[-1], float)[..., 0].mean() > 90  # "whole": the picture as it is (half red)
    assert np.array_equal(np.asarray(whole)[keep], np.asarray(start)[keep])


# ---- hires fix and upscalers ------------------------------------------------------------------------------

@pytest.fixture
def upscaler(client: TestClient, tmp_path: Path) -> str:
    path = save_upscaler(tmp_path / "toy-2x.safetensors", scale=2)
    entry = client.app.state.genstudio.studios["image"].registry.add(str(path), name="toy-2x", kind="upscaler")
    return entry.id


def test_hires_fix_outputs_scale_times_the_size(client: TestClient, upscaler: str) -> None:
    body = {"prompt": "a castle", "steps": 4, "seed": 7, "width": 96, "height": 64}
    for up in ("latent", "lanczos", upscaler):
        out, text = run(client, {**body, "hires": {"scale": 2, "strength": 0.5, "upscaler": up}})
        assert out.size == (192, 128), up
        t = text["parameters"]
        assert "Size: 96x64" in t and "Hires upscale: 2" in t and "Hires steps: 4" in t, t
        assert "Denoising strength: 0.5" in t
    assert "Hires upscaler: Latent" in run(client, {**body, "hires": {"scale": 1.5}})[1]["parameters"]
    # The built-in model works at 32 px: its hires fix is the upscale alone (documented), at the asked size.
    out, _ = run(client, {"prompt": "a star", "model": "builtin:emoji-tiny", "steps": 6, "hires": {"scale": 2}})
    assert out.size == (512, 512)


def test_hires_refine_changes_the_upscaled_image_by_its_strength(tiny_pipe: Any) -> None:
    from genstudio.image.backend import generate

    low = generate(tiny_pipe, params(steps=6, hires={"scale": 2, "strength": 0.2, "upscaler": "lanczos"}),
                   prompt="a cat", negative_prompt="")[0]
    high = generate(tiny_pipe, params(steps=6, hires={"scale": 2, "strength": 0.9, "upscaler": "lanczos"}),
                    prompt="a cat", negative_prompt="")[0]
    first = generate(tiny_pipe, params(steps=6), prompt="a cat", negative_prompt="")[0].resize((128, 128),
                                                                                               Image.LANCZOS)
    d_low = np.abs(np.asarray(low, float) - np.asarray(first, float)).mean()
    d_high = np.abs(np.asarray(high, float) - np.asarray(first, float)).mean()
    assert low.size == high.size == (128, 128) and d_low < d_high, (d_low, d_high)


def test_hires_errors_name_the_field(client: TestClient) -> None:
    r = client.post("/api/images", json={"prompt": "x", "width": 1024, "height": 1024, "hires": {"scale": 2}})
    assert r.status_code == 422 and "hires.scale" in r.text and "GENSTUDIO_MAX_SIZE" in r.text
    r = client.post("/api/images", json={"prompt": "x", "hires": {"upscaler": "no-such-model"}})
    assert r.status_code == 422 and "hires.upscaler" in r.text
    r = client.post("/api/images", json={"prompt": "x", "hires": {"scale": 9}})
    assert r.status_code == 422 and "scale" in r.text


def test_upscale_action_and_model_tiles(client: TestClient, upscaler: str) -> None:
    from genstudio.image.upscale import load, run_model

    start = two_tone(80, 60)
    asset = upload(client, start)
    for up, scale in (("lanczos", 2.0), (upscaler, 2.0), (upscaler, 3.0)):
        out, text = run(client, {"image": asset, "scale": scale, "upscaler": up}, url="/api/images/upscale")
        assert out.size == (round(80 * scale), round(60 * scale)), up
        assert f"Upscaler: {up}" in text["parameters"]
    listed = client.get("/api/models?kind=upscaler").json()
    assert [m["id"] for m in listed] == [upscaler] and listed[0]["kind"] == "upscaler"
    r = client.post("/api/images/upscale", json={"image": asset, "upscaler": "tiny-sd"})
    assert r.status_code == 422 and "upscaler" in r.text and "not an upscaler" in r.text
    # Tiled and whole runs agree (the overlap covers the model's reach).
    registry = client.app.state.genstudio.studios["image"].registry
    model = load(registry.get(upscaler, kind="upscaler").source)
    big = two_tone(600, 300)
    import torch

    x = torch.from_numpy(np.asarray(big, np.float32) / 255).permute(2, 0, 1)[None]
    with torch.inference_mode():
        whole = (model(x)[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    assert np.abs(whole.astype(int) - np.asarray(run_model(model, big), int)).max() <= 1


def test_upscalers_load_from_safetensors_only(tmp_path: Path, settings: Any) -> None:
    from genstudio.image.models import ModelError, ModelRegistry

    registry = ModelRegistry(settings)
    pth = tmp_path / "x.pth"
    pth.write_bytes(b"\x80\x04not a pickle we would open")
    with pytest.raises(ModelError, match="safetensors"):
        registry.add(str(pth), kind="upscaler")
    import torch
    from safetensors.torch import save_file

    odd = tmp_path / "odd.safetensors"
    save_file({"weird.weight": torch.zeros(3, 3)}, str(odd))
    with pytest.raises(ModelError, match="not an upscaler"):
        registry.add(str(odd), kind="upscaler")
    assert registry.list("upscaler") == []


def test_png_round_trip_of_the_edit_keys() -> None:
    from genstudio.image.pngmeta import a1111_text, parse_a1111

    p = params(init_image="a", strength=0.6, mask="b", mask_blur=3, inpaint_area="masked",
               outpaint={"left": 8, "right": 0, "top": 16, "bottom": 0})
    back = parse_a1111(a1111_text(p, final_prompt="a cat", final_negative="", seed=1, model_name="tiny"))
    assert back["strength"] == 0.6 and back["mask_blur"] == 3 and back["inpaint_area"] == "masked"
    assert back["outpaint"] == {"left": 8, "right": 0, "top": 16, "bottom": 0}
    p = params(hires={"scale": 1.5, "strength": 0.4, "steps": 9, "upscaler": "my-esrgan"})
    back = parse_a1111(a1111_text(p, final_prompt="a cat", final_negative="", seed=1, model_name="tiny"))
    assert back["hires"] == {"scale": 1.5, "strength": 0.4, "steps": 9, "upscaler": "my-esrgan"}
    assert "strength" not in back


def test_cli_outpaint_and_hires(tmp_path: Path) -> None:
    start = tmp_path / "start.png"
    two_tone(64, 64).save(start)
    env = {**os.environ, "GENSTUDIO_DATA_DIR": str(tmp_path / "data")}
    out = tmp_path / "wide.png"
    cmd = [sys.executable, "-m", "genstudio.cli", "image", "a red heart", "--init-image", str(start),
           "--outpaint", "32,32,0,0", "--steps", "6", "-o", str(out), "-q"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert Image.open(out).size == (256 + 64, 256)
    bad = subprocess.run(cmd[:-3] + ["--outpaint", "3,3", "-o", str(out)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 1 and "--outpaint" in bad.stderr
    out = tmp_path / "big.png"
    done = subprocess.run([sys.executable, "-m", "genstudio.cli", "image", "a star", "--hires-scale", "2",
                           "--hires-upscaler", "lanczos", "--steps", "6", "-o", str(out), "-q"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    im = Image.open(out)
    assert im.size == (512, 512) and "Hires upscaler: Lanczos" in im.text["parameters"]


# ---- inpainting models (9-channel UNets) ------------------------------------------------------------------

def test_an_inpainting_model_is_used_as_one(client: TestClient, tmp_path: Path) -> None:
    """A 9-channel inpainting UNet gets the mask and the masked picture (diffusers' inpainting pipeline of
    its family); text to image and img2img with it work too (an inpaint of everything, as A1111 does)."""
    from tiny_models import save_tiny_sd_inpainting

    folder = save_tiny_sd_inpainting(tmp_path / "tiny-inpaint")
    registry = client.app.state.genstudio.studios["image"].registry
    registry.add(str(folder), name="tiny-inpaint")
    assert {m["id"]: m["family"] for m in client.get("/api/models?kind=image").json()}["tiny-inpaint"] == "sd1"
    start = two_tone(64, 64)
    init = upload(client, start)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))
    body = {"prompt": "a cat", "model": "tiny-inpaint", "steps": 4, "seed": 1, "width": 64, "height": 64}
    out, _ = run(client, {**body, "init_image": init, "mask": upload(client, mask), "strength": 1.0})
    right = np.abs(np.asarray(out, int)[:, 32:] - np.asarray(start, int)[:, 32:])
    assert right.max() <= 16 and right.mean() < 1.5
    assert run(client, body)[0].size == (64, 64)
    assert run(client, {**body, "init_image": init, "strength": 0.5})[0].size == (64, 64)
    pipe = client.app.state.genstudio.studios["image"].cache.get(registry.get("tiny-inpaint"))
    assert pipe.unet.config.in_channels == 9 and type(pipe._genstudio_inpaint).__name__ == \
        "StableDiffusionInpaintPipeline"
