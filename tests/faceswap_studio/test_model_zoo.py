"""`genstudio models add FILE --kind faceswap`: a face model's role read from its interface, the active model of
each role used by the studio without any setting, and the model manager's list / default / remove."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from helpers import wait_job

pytest.importorskip("onnxruntime")
CONSENT = {"statement": "I agree that my face may be used in this school deepfake lab.", "subject": "Test Subject"}


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tiny_onnx_faces import export_styled_swaps, export_tiny_face_models, export_tiny_post_models

    folder = tmp_path_factory.mktemp("face_onnx")
    models = {**export_tiny_face_models(folder), **export_tiny_post_models(folder), **export_styled_swaps(folder)}

    class FiveChannels(torch.nn.Module):  # an image model that is none of the face models
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x, x[:, :2]], dim=1)

    other = folder / "segmenter.onnx"
    torch.onnx.export(FiveChannels(), (torch.rand(1, 3, 64, 64),), str(other), input_names=["x"],
                      output_names=["y"], opset_version=17, dynamo=False)
    models["other"] = other
    return models


def test_roles_and_styles_are_read_from_the_models(onnx_models: dict[str, Path]) -> None:
    from genstudio.faceswap.zoo import ZooError, classify, guess_style

    expected = {"recognition": "recognition", "swap": "swapper", "hyperswap": "swapper", "simswap": "swapper",
                "enhancer": "enhancer", "codeformer": "enhancer", "occluder": "occluder", "parser": "parser"}
    for name, role in expected.items():
        assert classify(onnx_models[name])[0] == role, name
    assert classify(onnx_models["swap"])[1] == 128
    # a renamed file keeps its family where the shape tells it
    for name, style in (("swap", "inswapper"), ("hyperswap", "hyperswap"), ("simswap", "simswap")):
        _, side, outputs = classify(onnx_models[name])
        assert guess_style("my_model", side, outputs) == style, name
    assert guess_style("simswap_unofficial_512", 512, 1) == "simswap"
    with pytest.raises(ZooError, match="neither a face"):
        classify(onnx_models["other"])


def test_models_add_faceswap_from_the_cli(settings: Any, onnx_models: dict[str, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from genstudio.cli import main
    from genstudio.faceswap.zoo import FaceModelZoo, effective_settings

    data = ["--data-dir", str(settings.data_dir)]
    pickle = tmp_path / "inswapper_128.pth"
    pickle.write_bytes(b"\x80\x04not a model")
    assert main(["models", "add", str(pickle), "--kind", "faceswap", *data]) == 1
    assert ".onnx files only" in capsys.readouterr().err
    assert main(["models", "add", str(onnx_models["other"]), "--kind", "faceswap", *data]) == 1
    assert "neither a face" in capsys.readouterr().err
    assert main(["models", "add", str(onnx_models["enhancer"]), "--kind", "faceswap", "--style", "simswap",
                 *data]) == 1
    assert "--style is for swap models" in capsys.readouterr().err

    assert main(["models", "add", str(onnx_models["swap"]), "--kind", "faceswap", "--name", "my swapper",
                 *data]) == 0
    assert "faceswap-my-swapper (faceswap swapper, inswapper style, 128 px input; active)" in capsys.readouterr().out
    # a swapper without a recognition model: the engine stays the built-in one
    assert effective_settings(settings).faceswap_engine == "landmark"
    assert main(["models", "add", str(onnx_models["recognition"]), "--kind", "faceswap", *data]) == 0
    assert main(["models", "add", str(onnx_models["hyperswap"]), "--kind", "faceswap", *data]) == 0
    out = capsys.readouterr().out
    assert "not active: `genstudio models default faceswap-hyperswap`" in out
    s = effective_settings(settings)
    assert (s.faceswap_engine, s.faceswap_swap_style) == ("onnx", "inswapper")
    assert s.faceswap_swap_model == onnx_models["swap"].resolve()

    assert main(["models", "default", "faceswap-hyperswap", *data]) == 0
    assert "face-swap swapper: faceswap-hyperswap" in capsys.readouterr().out
    s = effective_settings(settings)
    assert (s.faceswap_swap_style, s.faceswap_swap_model) == ("hyperswap", onnx_models["hyperswap"].resolve())
    assert main(["models", "list", *data]) == 0
    listing = capsys.readouterr().out
    assert "* faceswap-hyperswap" in listing and "  faceswap-my-swapper" in listing and "tiny-sd" in listing

    # an explicit setting wins over the zoo
    pinned = settings.model_copy(update={"faceswap_engine": "landmark"})
    assert effective_settings(pinned).faceswap_engine == "landmark"

    assert main(["models", "remove", "faceswap-hyperswap", *data]) == 0
    assert "your file is kept" in capsys.readouterr().out
    assert onnx_models["hyperswap"].is_file()
    assert FaceModelZoo(settings).active()["swapper"].id == "faceswap-my-swapper"  # falls back to the other one
    assert main(["models", "remove", "faceswap-my-swapper", *data]) == 0
    assert effective_settings(settings).faceswap_engine == "landmark"


def test_registered_models_serve_the_api(settings: Any, onnx_models: dict[str, Path], face_png: bytes) -> None:
    """Models added while the server runs: listed without paths, offered on the page, used by the next job
    (the ONNX engine and the enhancer), chosen and removed over the API."""
    from genstudio.api.app import create_app
    from genstudio.faceswap.zoo import FaceModelZoo

    zoo = FaceModelZoo(settings)
    with TestClient(create_app(settings)) as c:
        assert c.get("/api/faceswap/options").json()["enhance"] is False
        face = c.post("/api/uploads", files={"file": ("face.png", face_png)}).json()["asset_id"]
        r = c.post("/api/faceswap", json={"source": face, "target": face, "consent": CONSENT, "enhance": 0.5})
        assert r.status_code == 422, r.text

        for name in ("swap", "recognition", "enhancer"):
            zoo.add(str(onnx_models[name]))
        options = c.get("/api/faceswap/options").json()
        assert options["enhance"] is True and options["engine"] == "onnx"
        listed = c.get("/api/models", params={"kind": "faceswap"}).json()
        ids = {m["id"]: m for m in listed}
        assert ids["faceswap:onnx"]["family"] == "inswapper"
        assert ids["faceswap-enhancer"]["family"] == "enhancer" and ids["faceswap-enhancer"]["default"]
        assert str(onnx_models["swap"].parent) not in str(listed)  # never a server path

        r = c.post("/api/faceswap", json={"source": face, "target": face, "consent": CONSENT, "enhance": 0.5})
        assert r.status_code == 202, r.text
        job = wait_job(c, r.json()["job_id"], timeout=300)
        assert job["status"] == "succeeded", job
        meta = c.get(f"/api/assets/{job['assets'][0]}/meta").json()
        assert meta["params"]["engine"] == "onnx" and meta["params"]["enhance"] == 0.5

        assert c.post("/api/models/faceswap-swap/default").json()["id"] == "faceswap-swap"
        assert c.delete("/api/models/faceswap-enhancer").json() == {"deleted": "faceswap-enhancer"}
        assert c.get("/api/faceswap/options").json()["enhance"] is False
        assert c.delete("/api/models/faceswap-enhancer").status_code == 404


def test_models_pull_faceswap_from_a_hub(settings: Any, onnx_models: dict[str, Path], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`models pull REPO --kind faceswap --file NAME.onnx` against a loopback stand-in for the hub: only that
    file is fetched, recognised and registered; a file that is not a face model is refused and deleted; a
    pulled file is deleted with its entry; a missing file names the repo's .onnx files."""
    import shutil

    from genstudio.cli import main
    from genstudio.faceswap.zoo import FaceModelZoo, effective_settings
    from hub_standin import hub_standin

    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("swap", "recognition", "other"):
        shutil.copy(onnx_models[name], repo / f"{name}.onnx")
    (repo / "README.md").write_text("face models")
    data = ["--data-dir", str(settings.data_dir)]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with hub_standin({"facefusion-test/models": repo}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        assert main(["models", "pull", "facefusion-test/models", "--kind", "faceswap", "--file", "swap.onnx",
                     *data]) == 0
        assert "as faceswap-swap (faceswap swapper" in capsys.readouterr().out
        assert main(["models", "pull", "facefusion-test/models", "--kind", "faceswap", "--file",
                     "recognition.onnx", "--name", "arcface", *data]) == 0
        fetched = [line for line in hub.log if line.startswith("GET") and "/resolve/" in line]  # bytes sent
        assert fetched and all("swap.onnx" in line or "recognition.onnx" in line for line in fetched), fetched
        s = effective_settings(settings)
        assert s.faceswap_engine == "onnx" and s.faceswap_swap_model.is_file()
        assert str(settings.model_dir) in str(s.faceswap_swap_model)

        assert main(["models", "pull", "facefusion-test/models", "--kind", "faceswap", "--file", "other.onnx",
                     *data]) == 1
        assert "neither a face" in capsys.readouterr().err
        assert not list(settings.model_dir.rglob("other.onnx"))
        assert main(["models", "pull", "facefusion-test/models", "--kind", "faceswap", "--file", "gfpgan.onnx",
                     *data]) == 1
        err = capsys.readouterr().err
        assert "has no 'gfpgan.onnx'" in err and "swap.onnx" in err
        assert main(["models", "pull", "facefusion-test/models", "--kind", "faceswap", "--file", "../x.onnx",
                     *data]) == 1
        assert main(["models", "pull", "facefusion-test/models", "--kind", "faceswap", *data]) == 1
        assert "needs --file" in capsys.readouterr().err
        assert main(["models", "pull", "facefusion-test/none", "--kind", "faceswap", "--file", "a.onnx", *data]) == 1
        assert "has no model repo" in capsys.readouterr().err

    listed = {m["id"]: m for m in FaceModelZoo(settings).public()}
    assert listed["faceswap-arcface"]["source"] == "facefusion-test/models:recognition.onnx"
    pulled = Path(FaceModelZoo(settings).active()["swapper"].source)
    assert main(["models", "remove", "faceswap-swap", *data]) == 0
    assert not pulled.exists()  # ours: deleted with its entry


def test_api_pull_of_a_face_model_is_a_job(settings: Any, onnx_models: dict[str, Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`POST /api/models/pull {"repo", "kind": "faceswap", "file"}` (the contract's pull, with a face model):
    a job like an image pull; the model is then listed and offered; errors fail the job with the reason."""
    import shutil

    from genstudio.api.app import create_app
    from hub_standin import hub_standin

    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(onnx_models["enhancer"], repo / "gfpgan_1.4.onnx")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with hub_standin({"facefusion-test/models": repo}) as hub, TestClient(create_app(settings)) as c:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        assert c.post("/api/models/pull", json={"repo": "facefusion-test/models", "kind": "faceswap"}
                      ).status_code == 422  # which file?
        assert c.post("/api/models/pull", json={"repo": "facefusion-test/models", "kind": "faceswap",
                                                "file": "../../etc/passwd"}).status_code == 422
        assert c.post("/api/models/pull", json={"repo": "facefusion-test/models", "file": "a.onnx"}
                      ).status_code == 422  # an image pull takes no file
        r = c.post("/api/models/pull", json={"repo": "facefusion-test/models", "kind": "faceswap",
                                             "file": "gfpgan_1.4.onnx"})
        assert r.status_code == 202, r.text
        assert r.json()["model_id"] == "faceswap-gfpgan-1-4"
        job = wait_job(c, r.json()["job_id"], timeout=120)
        assert job["status"] == "succeeded", job
        listed = {m["id"]: m for m in c.get("/api/models", params={"kind": "faceswap"}).json()}
        assert listed["faceswap-gfpgan-1-4"]["family"] == "enhancer"
        assert c.get("/api/faceswap/options").json()["enhance"] is True
        missing = c.post("/api/models/pull", json={"repo": "facefusion-test/models", "kind": "faceswap",
                                                   "file": "codeformer.onnx"}).json()["job_id"]
        job = wait_job(c, missing, timeout=120)
        assert job["status"] == "failed" and "has no 'codeformer.onnx'" in job["error"], job
