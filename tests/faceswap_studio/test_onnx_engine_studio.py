"""The studio pointed at a user's inswapper-style + recognition ONNX models (tiny ones the test builds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from helpers import wait_job

pytest.importorskip("onnxruntime")
CONSENT = {"statement": "I agree that my face may be used in this school deepfake lab.", "subject": "Test Subject"}


def test_onnx_engine_runs_jobs_and_is_recorded(settings: Any, face_png: bytes, clip: Path, tmp_path: Path) -> None:
    from genstudio.api.app import create_app
    from genstudio.faceswap.engines import check_engine
    from tiny_onnx_faces import export_tiny_face_models

    models = export_tiny_face_models(tmp_path)
    s = settings.model_copy(
        update={
            "faceswap_engine": "onnx",
            "faceswap_swap_model": models["swap"],
            "faceswap_recognition_model": models["recognition"],
        }
    )
    check_engine(s)
    with TestClient(create_app(s)) as c:
        ids = [
            c.post("/api/uploads", files={"file": (n, d)}).json()["asset_id"]
            for n, d in (("face.png", face_png), ("clip.mp4", clip.read_bytes()))
        ]
        r = c.post("/api/faceswap", json={"source": ids[0], "target": ids[1], "consent": CONSENT})
        assert r.status_code == 202, r.text
        job = wait_job(c, r.json()["job_id"], timeout=300)
        assert job["status"] == "succeeded", job
        meta = c.get(f"/api/assets/{job['assets'][0]}/meta").json()
        assert meta["params"]["engine"] == "onnx"
        report = c.post("/api/verify", files={"file": ("o.mp4", c.get(meta["url"]).content)}).json()
        assert report["manifest"]["valid"] and report["label"]["found"] and report["watermark"]["found"]
        assert report["manifest"]["assertions"]["org.genstudio.generation"]["engine"] == "onnx"


def test_onnx_engine_without_models_is_a_clear_error(settings: Any, tmp_path: Path) -> None:
    from genstudio.faceswap.engines import check_engine

    with pytest.raises(ValueError, match="GENSTUDIO_FACESWAP_SWAP_MODEL must name an .onnx file"):
        check_engine(settings.model_copy(update={"faceswap_engine": "onnx"}))
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"x")
    with pytest.raises(ValueError, match="is not an .onnx file"):
        check_engine(
            settings.model_copy(
                update={"faceswap_engine": "onnx", "faceswap_swap_model": bad, "faceswap_recognition_model": bad}
            )
        )


def test_face_models_from_the_api_and_the_cli(settings: Any, face_png: bytes, tmp_path: Path, capsys) -> None:
    """Enhancer + occlusion mask asked for in a request: refused (audited, naming the field and the setting)
    when the studio has no such model; run, and recorded in the output's params and manifest, when it has."""

    from genstudio.api.app import create_app
    from genstudio.cli import main
    from tiny_onnx_faces import export_tiny_post_models

    models = export_tiny_post_models(tmp_path)
    with TestClient(create_app(settings)) as c:
        assert c.get("/api/faceswap/options").json()["enhance"] is False
        face = c.post("/api/uploads", files={"file": ("face.png", face_png)}).json()["asset_id"]
        r = c.post("/api/faceswap", json={"source": face, "target": face, "consent": CONSENT, "enhance": 0.7})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "enhance"], r.text
        assert "GENSTUDIO_FACESWAP_ENHANCER_MODEL" in r.json()["detail"][0]["msg"]
        assert c.get("/api/faceswap/audit").json()["items"][0]["outcome"] == "refused"
        r = c.post("/api/faceswap", json={"source": face, "target": face, "consent": CONSENT, "enhance": 1.5})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "enhance"]
    s = settings.model_copy(update={"faceswap_enhancer_model": models["codeformer"],
                                    "faceswap_occluder_model": models["occluder"]})
    with TestClient(create_app(s)) as c:
        options = c.get("/api/faceswap/options").json()
        assert options["enhance"] and options["occlusion_mask"] and not options["region_mask"]
        face = c.post("/api/uploads", files={"file": ("face.png", face_png)}).json()["asset_id"]
        plain = c.post("/api/faceswap", json={"source": face, "target": face, "consent": CONSENT})
        asked = c.post("/api/faceswap", json={"source": face, "target": face, "consent": CONSENT, "enhance": 0.7,
                                              "occlusion_mask": True})
        outputs = []
        for r in (plain, asked):
            assert r.status_code == 202, r.text
            job = wait_job(c, r.json()["job_id"], timeout=300)
            assert job["status"] == "succeeded", job
            meta = c.get(f"/api/assets/{job['assets'][0]}/meta").json()
            outputs.append((meta, c.get(meta["url"]).content))
        meta = outputs[1][0]
        assert meta["params"]["enhance"] == 0.7 and meta["params"]["occlusion_mask"] is True
        assert outputs[0][1] != outputs[1][1]  # the models changed the result
        report = c.post("/api/verify", files={"file": ("o.png", outputs[1][1])}).json()
        options = report["manifest"]["assertions"]["org.genstudio.generation"]["options"]
        assert options["enhance"] == 0.7 and options["occlusion_mask"] is True
    # The CLI names the flag when the model is missing.
    src = tmp_path / "face.png"
    src.write_bytes(face_png)
    code = main(["faceswap", "--source", str(src), "--target", str(src), "--consent", CONSENT["statement"],
                 "--subject", "Test Subject", "--region-mask", "-o", str(tmp_path / "o.png"),
                 "--data-dir", str(tmp_path / "cli-data"), "-q"])
    assert code != 0 and "--region-mask" in capsys.readouterr().err


def test_models_list_names_the_engine_and_the_face_models(settings: Any, tmp_path: Path) -> None:
    from genstudio.api.app import create_app
    from tiny_onnx_faces import export_tiny_post_models

    models = export_tiny_post_models(tmp_path)
    s = settings.model_copy(update={"faceswap_enhancer_model": models["enhancer"],
                                    "faceswap_parser_model": models["parser"]})
    with TestClient(create_app(s)) as c:
        listed = {m["id"]: m for m in c.get("/api/models?kind=faceswap").json()}
    assert listed["faceswap:landmark"]["default"] and listed["faceswap:landmark"]["family"] == "builtin"
    assert listed["faceswap:enhancer"]["format"] == "onnx" and listed["faceswap:enhancer"]["size_bytes"] > 0
    assert listed["faceswap:parser"]["name"] == "parser (parser.onnx)" and "faceswap:occluder" not in listed
    assert all(str(tmp_path) not in str(m) for m in listed.values())  # no server paths
