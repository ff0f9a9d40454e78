"""Live preview: the job's SSE stream carries `preview` events (a small JPEG of the current step) for the
built-in model (its own pixels) and SD-family pipelines (latent -> RGB), through the job process too."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from genstudio.image.preview import preview_steps
from helpers import job_events


def jpeg_of(data_url: str) -> Image.Image:
    assert data_url.startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB")


def test_preview_steps_are_spread_and_include_the_last() -> None:
    assert preview_steps(3) == set()
    assert preview_steps(4) >= {4}
    many = preview_steps(30)
    assert 30 in many and 3 <= len(many) <= 7


def test_builtin_model_preview_ends_as_the_image(client: TestClient) -> None:
    job = client.post("/api/images", json={"prompt": "a red heart", "model": "builtin:emoji-tiny", "steps": 8,
                                          "seed": 5}).json()["job_id"]
    seen = job_events(client, job)
    previews = [d for e, d in seen if e == "preview"]
    assert previews and previews[-1]["step"] == 8 and all(p["steps"] == 8 for p in previews)
    assert [p["step"] for p in previews] == sorted(p["step"] for p in previews)
    end = [d for e, d in seen if e == "end"][0]
    final = Image.open(io.BytesIO(client.get(f"/api/assets/{end['assets'][0]}").content)).convert("RGB")
    last = jpeg_of(previews[-1]["image"]).resize(final.size, Image.Resampling.BILINEAR)
    diff = np.abs(np.asarray(last, float) - np.asarray(final, float)).mean()
    assert diff < 25, f"the last preview is not the image: mean difference {diff:.1f}"


def test_sd_pipeline_preview_has_the_output_aspect(client: TestClient) -> None:
    job = client.post("/api/images", json={"prompt": "a cat", "steps": 4, "width": 128, "height": 64}).json()["job_id"]
    previews = [d for e, d in job_events(client, job) if e == "preview"]
    assert previews, "no preview in a 4-step job"
    im = jpeg_of(previews[-1]["image"])
    assert im.size[0] == 2 * im.size[1]


@pytest.mark.parametrize("steps", [6])
def test_previews_cross_the_job_process(tmp_path: Path, steps: int) -> None:
    from genstudio.api.app import create_app
    from genstudio.config import Settings

    with TestClient(create_app(Settings(data_dir=tmp_path / "data", executor="process"))) as client:
        job = client.post("/api/images", json={"prompt": "a star", "steps": steps}).json()["job_id"]
        seen = job_events(client, job)
    assert [d["step"] for e, d in seen if e == "preview"][-1:] == [steps]
    assert seen[-1][1]["status"] == "succeeded"
