"""SD 3.x and FLUX folders load and generate through the same road as SD 1.x/2.x/SDXL (tiny pipelines built
offline): their family in /api/models, bfloat16 chosen for them on GPUs with bfloat16, no latent preview
(their latents are not SD's, and no projection is faked)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from genstudio.image.device import Machine, pick_dtype
from helpers import job_events
from tiny_models import save_tiny_flux, save_tiny_sd3


@pytest.mark.parametrize(("family", "save"), [("sd3", save_tiny_sd3), ("flux", save_tiny_flux)])
def test_tiny_folder_generates_through_the_api(client: TestClient, tmp_path: Path, family: str, save) -> None:  # noqa: ANN001
    folder = save(tmp_path / f"tiny-{family}")
    client.app.state.genstudio.studios["image"].registry.add(str(folder), name=f"tiny-{family}")
    listed = {m["id"]: m for m in client.get("/api/models?kind=image").json()}
    assert listed[f"tiny-{family}"]["family"] == family
    r = client.post("/api/images", json={"prompt": "a red cube", "model": f"tiny-{family}", "steps": 4,
                                        "guidance": 2.0,
                                        "width": 64, "height": 64, "seed": 3})
    assert r.status_code == 202, r.text
    seen = job_events(client, r.json()["job_id"])
    events = [name for name, _data in seen]
    end = [data for name, data in seen if name == "end"][0]
    assert end["status"] == "succeeded", end["error"]
    meta = client.get(f"/api/assets/{end['assets'][0]}/meta").json()
    assert (meta["params"]["width"], meta["params"]["height"]) == (64, 64)
    assert "preview" not in events
    gpu = Machine(cuda=[{"name": "L4", "total": 24 << 30, "free": 22 << 30, "bf16": True}], torch_cuda_build=True)
    assert pick_dtype("auto", "cuda:0", gpu, family) == "bfloat16"


def test_flow_models_refuse_other_samplers(client: TestClient, tmp_path: Path) -> None:
    folder = save_tiny_sd3(tmp_path / "tiny-sd3")
    client.app.state.genstudio.studios["image"].registry.add(str(folder), name="tiny-sd3")
    r = client.post("/api/images", json={"prompt": "x", "model": "tiny-sd3", "sampler": "dpmpp_2m"})
    assert r.status_code == 422 and "euler" in r.text and "sampler" in r.text
    ok = client.post("/api/images", json={"prompt": "x", "model": "tiny-sd3", "steps": 2, "width": 64, "height": 64})
    assert ok.status_code == 202 and ok.json()["params"]["sampler"] == "euler"
