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
