"""GET /api/music/onnx/{name}: exports on first request into the data dir, serves only its three files with
ETags, re-exports when the model's weights change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from genstudio.api.app import create_app
from genstudio.api.routes import music_onnx
from genstudio.config import Settings
from genstudio.music.model import CONFIG_MAP, MusicVAE
from genstudio.music.onnx_export import CONFIG_FILE, DECODER_FILE, ENCODER_FILE, sha256_file

URL = "/api/music/onnx"


@pytest.fixture
def tiny_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    torch.manual_seed(0)
    folder = tmp_path / "tiny-melody"
    MusicVAE(CONFIG_MAP["cat-mel_2bar_tiny"]).save_pretrained(folder)
    monkeypatch.setattr(music_onnx, "MODEL_DIR", folder)
    return folder


@pytest.fixture
def api(settings: Settings, tiny_model: Path) -> Iterator[TestClient]:
    app = create_app(settings, start_workers=False)
    if not any(getattr(r, "path", "") == URL + "/{name}" for r in app.routes):
        app.include_router(music_onnx.router)  # until app.py includes it
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_exports_on_first_request_and_serves_with_etags(api: TestClient, settings: Settings, tiny_model: Path) -> None:
    cache = settings.data_dir / "onnx" / "melody-2bar"
    assert not cache.exists()
    r = api.get(f"{URL}/{CONFIG_FILE}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    cfg = r.json()
    assert cfg["source_sha256"] == sha256_file(tiny_model / "model.safetensors") and cfg["z_size"] == 8
    assert sorted(p.name for p in cache.iterdir()) == sorted([CONFIG_FILE, DECODER_FILE, ENCODER_FILE])
    for name in (ENCODER_FILE, DECODER_FILE):
        r = api.get(f"{URL}/{name}")
        assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
        assert r.headers["etag"] == f'"{cfg["files"][name]["sha256"]}"' and r.headers["cache-control"] == "no-cache"
        assert len(r.content) == cfg["files"][name]["bytes"]
        again = api.get(f"{URL}/{name}", headers={"If-None-Match": f'"other", {r.headers["etag"]}'})
        assert again.status_code == 304 and again.content == b""
        assert api.get(f"{URL}/{name}", headers={"If-None-Match": '"other"'}).status_code == 200


@pytest.mark.parametrize("name", ["model.safetensors", "genstudio.db", ".config.json.tmp", "melody_decoder", "x"])
def test_unknown_names_are_404_naming_the_files(api: TestClient, name: str) -> None:
    r = api.get(f"{URL}/{name}")
    assert r.status_code == 404 and "melody_decoder.onnx" in r.json()["detail"]


def test_reexports_when_the_weights_change(api: TestClient, settings: Settings, tiny_model: Path) -> None:
    first = api.get(f"{URL}/{CONFIG_FILE}").json()
    torch.manual_seed(1)
    MusicVAE(CONFIG_MAP["cat-mel_2bar_tiny"]).save_pretrained(tiny_model)
    second = api.get(f"{URL}/{CONFIG_FILE}").json()
    assert second["source_sha256"] == sha256_file(tiny_model / "model.safetensors") != first["source_sha256"]
    assert second["files"][DECODER_FILE]["sha256"] != first["files"][DECODER_FILE]["sha256"]
    cache = settings.data_dir / "onnx" / "melody-2bar"
    assert json.loads((cache / CONFIG_FILE).read_text()) == second


def test_missing_model_is_503(api: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(music_onnx, "MODEL_DIR", tmp_path / "nowhere")
    r = api.get(f"{URL}/{DECODER_FILE}")
    assert r.status_code == 503 and "could not be exported" in r.json()["detail"]
