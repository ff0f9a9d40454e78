"""The model manager against a loopback stand-in for the hub (real HTTP, real huggingface_hub): pull as a
job with byte progress over SSE, cancel, errors that say which (no such repo, offline), then the pulled
model generates; remove and default; family, size and source in GET /api/models; the CLI verbs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from safetensors.torch import save_file

from genstudio.image.models import family_from_keys
from helpers import job_events, wait_job
from hub_standin import hub_standin
from tiny_models import save_tiny_sd

REPO = "genstudio-test/tiny-sd"


@pytest.fixture
def hub(tiny_sd_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    pickles = tmp_path / "pickles"
    (pickles / "unet").mkdir(parents=True)
    (pickles / "model_index.json").write_text("{}")
    (pickles / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04 a pickle")
    with hub_standin({REPO: tiny_sd_dir, "genstudio-test/only-pickles": pickles}) as h:
        monkeypatch.setenv("HF_ENDPOINT", h.endpoint)
        yield h


def test_pull_is_a_job_with_byte_progress_then_the_model_generates(client: TestClient, hub) -> None:  # noqa: ANN001
    r = client.post("/api/models/pull", json={"repo": REPO, "kind": "image"})
    assert r.status_code == 202, r.text
    job_id, model_id = r.json()["job_id"], r.json()["model_id"]
    assert model_id == "genstudio-test-tiny-sd"
    seen = [data for _event, data in job_events(client, job_id)]
    assert seen[-1]["status"] == "succeeded", seen[-1]
    fractions = [e["progress"] for e in seen]
    assert fractions == sorted(fractions), fractions  # bytes only grow: the total is known before the first
    assert any(0 < f < 1 for f in fractions), fractions
    # Only safetensors and config files crossed the wire.
    gets = [line for line in hub.log if line.startswith("GET") and "/resolve/" in line]
    fetched = [line.split("/resolve/")[1].split("/", 1)[1] for line in gets]
    assert fetched and all(f.endswith((".json", ".txt", ".safetensors")) for f in fetched)
    listed = {m["id"]: m for m in client.get("/api/models?kind=image").json()}
    pulled = listed[model_id]
    assert (pulled["family"], pulled["source"], pulled["default"]) == ("sd1", "local", False)
    assert pulled["size_bytes"] > 100_000
    # It generates, and it can be made the default (used when a request names no model).
    assert client.post(f"/api/models/{model_id}/default").json()["default"] is True
    made = client.post("/api/images", json={"prompt": "a red circle", "steps": 2, "width": 64, "height": 64})
    assert made.json()["params"]["model"] == model_id
    assert wait_job(client, made.json()["job_id"])["status"] == "succeeded"
    # Removed: unregistered, its downloaded files deleted, the default back to the setting's.
    assert client.delete(f"/api/models/{model_id}").status_code == 200
    assert model_id not in {m["id"] for m in client.get("/api/models").json()}
    assert not (client.app.state.genstudio.settings.model_dir / "hub" / "genstudio-test--tiny-sd").exists()
    assert client.delete(f"/api/models/{model_id}").status_code == 404
    assert client.delete("/api/models/builtin:emoji-tiny").status_code == 422


def test_pull_errors_say_which(client: TestClient, hub, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    missing = client.post("/api/models/pull", json={"repo": "genstudio-test/no-such-model"}).json()["job_id"]
    job = wait_job(client, missing)
    assert job["status"] == "failed" and "has no model repo 'genstudio-test/no-such-model'" in job["error"]

    pickles = client.post("/api/models/pull", json={"repo": "genstudio-test/only-pickles"}).json()["job_id"]
    job = wait_job(client, pickles)
    assert job["status"] == "failed" and "pickled weights are never loaded" in job["error"]
    assert not any("diffusion_pytorch_model.bin" in line for line in hub.log), "a pickle was downloaded"

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: offline
    offline = client.post("/api/models/pull", json={"repo": REPO}).json()["job_id"]
    job = wait_job(client, offline, timeout=120)
    assert job["status"] == "failed" and "no connection to the hub at http://127.0.0.1:9" in job["error"]

    bad = client.post("/api/models/pull", json={"repo": "../../etc"})
    assert bad.status_code == 422 and "repo" in bad.text
    assert client.post("/api/models/pull", json={"repo": REPO, "kind": "lora"}).status_code == 422


def test_cancel_stops_a_pull_and_removes_what_was_fetched(client: TestClient, hub) -> None:  # noqa: ANN001
    hub.slow(0.05)  # 16 KB every 50 ms: the UNet takes seconds
    job_id = client.post("/api/models/pull", json={"repo": REPO, "name": "slow-one"}).json()["job_id"]
    deadline = time.monotonic() + 60
    while client.get(f"/api/jobs/{job_id}").json()["progress"] <= 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 200
    job = wait_job(client, job_id)
    assert job["status"] == "cancelled"
    assert "slow-one" not in {m["id"] for m in client.get("/api/models").json()}
    assert not (client.app.state.genstudio.settings.model_dir / "hub" / "genstudio-test--tiny-sd").exists()


def test_family_from_single_file_keys(tmp_path: Path) -> None:
    assert family_from_keys({"cond_stage_model.transformer.text_model.embeddings.position_ids"}) == "sd1"
    assert family_from_keys({"cond_stage_model.model.ln_final.weight"}) == "sd2"
    assert family_from_keys({"conditioner.embedders.1.model.ln_final.weight"}) == "sdxl"
    assert family_from_keys({"conditioner.embedders.0.model.ln_final.weight"}) == "sdxl-refiner"
    assert family_from_keys({"model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight"}) == "sd3"
    assert family_from_keys({"double_blocks.0.img_attn.qkv.weight"}) == "flux"
    assert family_from_keys({"something.else"}) == "unknown"


def test_cli_pull_default_list_remove(tiny_sd_dir: Path, tmp_path: Path) -> None:
    with hub_standin({REPO: tiny_sd_dir}) as h:
        env = {**os.environ, "HF_ENDPOINT": h.endpoint, "GENSTUDIO_DATA_DIR": str(tmp_path / "data")}
        env.pop("HF_HUB_OFFLINE", None)

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "genstudio.cli", "models", *args], env=env,
                                  capture_output=True, text=True, timeout=300)

        pulled = cli("pull", REPO, "--name", "tiny")
        assert pulled.returncode == 0, pulled.stderr
        assert "pulled genstudio-test/tiny-sd as tiny (sd1" in pulled.stdout
        assert "MB/s" in pulled.stderr  # the progress line
        assert cli("default", "tiny").stdout.strip() == "default image model: tiny"
        listing = cli("list").stdout.splitlines()
        assert any(line.startswith("* tiny ") and " sd1 " in line for line in listing), listing
        assert cli("remove", "tiny").returncode == 0
        gone = cli("default", "tiny")
        assert gone.returncode == 1 and "unknown model 'tiny'" in gone.stderr
        missing = cli("pull", "genstudio-test/nope")
        assert missing.returncode == 1 and "has no model repo" in missing.stderr


def test_single_file_family_shows_in_the_model_list(client: TestClient, tmp_path: Path) -> None:
    import torch

    ckpt = tmp_path / "mini-xl.safetensors"
    save_file({"conditioner.embedders.1.model.ln_final.weight": torch.zeros(2),
               "model.diffusion_model.out.0.weight": torch.zeros(2)}, str(ckpt))
    client.app.state.genstudio.studios["image"].registry.add(str(ckpt), name="mini-xl")
    listed = {m["id"]: m for m in client.get("/api/models").json()}
    assert listed["mini-xl"]["family"] == "sdxl" and listed["mini-xl"]["format"] == "single_file"
    assert "path" not in json.dumps(listed["mini-xl"]) or str(tmp_path) not in json.dumps(listed["mini-xl"])


def test_save_tiny_sd_is_the_stand_in_repo(tmp_path: Path) -> None:
    folder = save_tiny_sd(tmp_path / "x")
    assert (folder / "model_index.json").is_file()
