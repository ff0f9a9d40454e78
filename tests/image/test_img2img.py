"""img2img (`init_image` + `strength`, API v2): from an uploaded or generated image, with the built-in model
(pixel space: its result must stay closer to the start the lower the strength) and SD pipelines (diffusers'
img2img sharing the loaded components); recorded in the PNG as A1111 writes it; errors name the field."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from helpers import wait_job


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def start_image(size: int = 256) -> Image.Image:
    """A red disc on white: a picture the built-in emoji model knows how to keep."""
    yy, xx = np.mgrid[0:size, 0:size]
    disc = (xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size * 0.35) ** 2
    arr = np.full((size, size, 3), 255, np.uint8)
    arr[disc] = (220, 30, 40)
    return Image.fromarray(arr)


def upload(client: TestClient, data: bytes, name: str = "start.png", mime: str = "image/png") -> str:
    r = client.post("/api/uploads", files={"file": (name, data, mime)})
    assert r.status_code == 201, r.text
    return r.json()["asset_id"]


def run(client: TestClient, body: dict) -> Image.Image:
    r = client.post("/api/images", json=body)
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["job_id"], timeout=120)
    assert job["status"] == "succeeded", job["error"]
    return Image.open(io.BytesIO(client.get(f"/api/assets/{job['assets'][0]}").content)).convert("RGB")


def distance(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, float) - np.asarray(b.resize(a.size), float)).mean())


def test_builtin_model_keeps_more_of_the_start_at_lower_strength(client: TestClient) -> None:
    start = start_image()
    asset = upload(client, png(start))
    body = {"prompt": "a green frog", "model": "builtin:emoji-tiny", "steps": 20, "seed": 4, "init_image": asset}
    low = run(client, {**body, "strength": 0.2})
    high = run(client, {**body, "strength": 0.95})
    assert low.size == high.size == (256, 256)
    assert distance(start, low) < 0.6 * distance(start, high), (distance(start, low), distance(start, high))
    text2img = run(client, {k: v for k, v in body.items() if k != "init_image"})
    assert distance(start, low) < distance(start, text2img)


def test_sd_img2img_records_strength_and_reads_it_back(client: TestClient) -> None:
    asset = upload(client, png(start_image(96).convert("RGB")))
    out = run(client, {"prompt": "a red ball", "steps": 4, "width": 128, "height": 64, "init_image": asset,
                       "strength": 0.5, "seed": 2})
    assert out.size == (128, 64)
    jobs = client.get("/api/gallery?studio=image&limit=1").json()["items"]
    meta = jobs[0]["params"]
    assert (meta["init_image"], meta["strength"]) == (asset, 0.5)
    data = client.get(jobs[0]["url"]).content
    assert "Denoising strength: 0.5" in Image.open(io.BytesIO(data)).text["parameters"]
    back = client.post("/api/images/params", files={"file": ("x.png", data, "image/png")}).json()
    assert back["params"]["strength"] == 0.5 and back["params"]["init_image"] == asset
    from genstudio.image.pngmeta import parse_a1111

    assert parse_a1111(back["parameters"])["strength"] == 0.5  # A1111's own text, as A1111 would read it


def test_img2img_errors_name_the_field(client: TestClient) -> None:
    r = client.post("/api/images", json={"prompt": "x", "strength": 0.5})
    assert r.status_code == 422 and "strength" in r.text and "init_image" in r.text
    r = client.post("/api/images", json={"prompt": "x", "init_image": "0" * 32})
    assert r.status_code in (404, 422) and "init_image" in r.text
    import mido

    mid = mido.MidiFile()
    track = mido.MidiTrack()
    mid.tracks.append(track)
    for i in range(4):
        track.append(mido.Message("note_on", note=60 + i, velocity=80, time=0))
        track.append(mido.Message("note_off", note=60 + i, velocity=0, time=240))
    buf = io.BytesIO()
    mid.save(file=buf)
    midi = upload(client, buf.getvalue(), "tune.mid", "audio/midi")
    r = client.post("/api/images", json={"prompt": "x", "init_image": midi})
    assert r.status_code == 422 and "init_image" in r.text and "not an image" in r.text
    asset = upload(client, png(start_image(64)))
    r = client.post("/api/images", json={"prompt": "x", "init_image": asset, "strength": 0.05, "steps": 10})
    assert r.status_code == 422 and "strength" in r.text


def test_cli_init_image(tmp_path: Path) -> None:
    start = tmp_path / "start.png"
    start_image().save(start)
    out = tmp_path / "out.png"
    env = {**os.environ, "GENSTUDIO_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-m", "genstudio.cli", "image", "a red heart", "--init-image", str(start),
                           "--strength", "0.4", "--steps", "10", "-o", str(out), "-q"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    made = Image.open(out)
    assert made.size == (256, 256) and "Denoising strength: 0.4" in made.text["parameters"]


def half_mask(size: tuple[int, int]) -> Image.Image:
    """White (repaint) on the left half, black (keep) on the right."""
    m = Image.new("L", size, 0)
    m.paste(255, (0, 0, size[0] // 2, size[1]))
    return m


def test_inpaint_keeps_every_pixel_outside_the_mask(client: TestClient) -> None:
    cases = (("builtin:emoji-tiny", (256, 256), {}), (None, (128, 64), {"width": 128, "height": 64}))
    for model, size, extra in cases:
        start = start_image(size[0]).resize(size)
        init = upload(client, png(start))
        mask = upload(client, png(half_mask(size)))
        body = {"prompt": "a blue square", "steps": 10, "seed": 5, "init_image": init, "mask": mask,
                "strength": 0.9, "mask_blur": 6, **extra}
        if model:
            body["model"] = model
        out = run(client, body)
        assert out.size == size
        a, b = np.asarray(out, int), np.asarray(start.convert("RGB"), int)
        right = slice(size[0] // 2, None)
        # The saved PNG carries the invisible watermark, which moves pixels by a level or two everywhere;
        # before it (test_composite_is_exact_outside_the_mask) the outside is exact.
        outside = np.abs(a[:, right] - b[:, right])
        assert outside.max() <= 16 and outside.mean() < 1.5, (outside.max(), outside.mean())
        inside = np.abs(a[:, : size[0] // 2 - 8] - b[:, : size[0] // 2 - 8])
        assert inside.mean() > 5, "the masked area was not repainted"
    data = client.get(client.get("/api/gallery?studio=image&limit=1").json()["items"][0]["url"]).content
    assert "Mask blur: 6" in Image.open(io.BytesIO(data)).text["parameters"]


def test_mask_errors_name_the_field(client: TestClient) -> None:
    mask = upload(client, png(half_mask((64, 64))))
    r = client.post("/api/images", json={"prompt": "x", "mask": mask})
    assert r.status_code == 422 and "mask" in r.text and "init_image" in r.text
    r = client.post("/api/images", json={"prompt": "x", "mask_blur": 3})
    assert r.status_code == 422 and "mask_blur" in r.text


def test_composite_is_exact_outside_the_mask(tiny_sd_dir: Path) -> None:
    from genstudio.image.backend import generate, load_pipeline
    from genstudio.image.models import ModelEntry
    from genstudio.image.params import ImageParams

    pipe = load_pipeline(ModelEntry(id="tiny", format="folder", source=str(tiny_sd_dir)))
    start = start_image(64)
    p = ImageParams(prompt="a cat", negative_prompt="", style=None, model="tiny", seed=1, steps=4, guidance=1.0,
                    width=64, height=64, batch=2, sampler="ddim", tile=False, init_image="x", strength=0.8,
                    mask="y", mask_blur=5)
    for made in generate(pipe, p, prompt="a cat", negative_prompt="", init=start, mask=half_mask((64, 64))):
        a, b = np.asarray(made), np.asarray(start)
        assert np.array_equal(a[:, 32:], b[:, 32:])
        assert not np.array_equal(a[:, :24], b[:, :24])
