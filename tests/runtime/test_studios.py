"""The studio registry: one road for every studio, on the executor production uses, without the web layer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from genstudio import runtime
from genstudio.config import Settings
from genstudio.studio import Studio
from helpers import wait_job


def test_every_registered_studio_has_the_one_shape() -> None:
    for name in runtime.studio_names():
        cls = runtime.studio_class(name)
        assert cls.name == name and cls.media_kinds and cls.requests
        for attr in ("resolve", "params", "run", "models"):
            assert callable(getattr(cls, attr)), (name, attr)
        assert runtime.load(cls.router).prefix.startswith("/api")  # the web adapter exists
        assert callable(runtime.load(cls.cli))  # and the command-line one


def test_handlers_build_without_importing_the_web_layer(tmp_path: Path) -> None:
    """The job process and `genstudio worker` import runtime, never FastAPI."""
    code = (
        "import sys; from genstudio.config import Settings; from genstudio.runtime import make_handlers; "
        f"h = make_handlers(Settings(data_dir={str(tmp_path)!r})); "
        "print(sorted(h), 'fastapi' in sys.modules, 'genstudio.api' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.split("]")[0] + "]" == str(sorted(runtime.studio_names()))
    assert out.stdout.strip().endswith("False False"), out.stdout


@pytest.mark.slow
def test_music_job_on_the_process_executor_is_signed_and_filed_under_its_studio(tmp_path: Path) -> None:
    """executor=process (the default in production): the child builds its handlers from the registry."""
    from genstudio.api.app import create_app

    settings = Settings(data_dir=tmp_path / "data", executor="process")
    with TestClient(create_app(settings)) as c:
        r = c.post("/api/music/sample", json={"n": 1, "bars": 2, "seed": 3})
        assert r.status_code == 202, r.text
        job = wait_job(c, r.json()["job_id"], timeout=240)
        assert job["status"] == "succeeded", job
        (asset_id,) = job["assets"]
        meta = c.get(f"/api/assets/{asset_id}/meta").json()
        assert meta["studio"] == "music" and meta["kind"] == "music"
        assert [i["id"] for i in c.get("/api/gallery", params={"studio": "music"}).json()["items"]] == [asset_id]
        assert c.get("/api/gallery", params={"studio": "image"}).json()["items"] == []
        assert c.get("/api/gallery", params={"studio": "nope"}).status_code == 422
        midi = c.get(f"/api/assets/{asset_id}").content
        report = c.post("/api/verify", files={"file": ("m.mid", midi, "audio/midi")}).json()
        assert report["manifest"]["valid"] and report["manifest"]["ai_generated"], json.dumps(report)[:500]
        models = c.get("/api/models").json()
        assert {m["studio"] for m in models} == set(runtime.studio_names())
        assert c.get("/api/models", params={"kind": "nope"}).status_code == 422


def test_import_contract_holds() -> None:
    """`make lint` runs the same check; here it fails the test run too."""
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint)], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0 and "1 kept, 0 broken" in out.stdout, out.stdout[-2000:]


def test_studio_protocol_is_satisfied(tmp_path: Path) -> None:
    studios = runtime.Studios(runtime.context(Settings(data_dir=tmp_path)))
    for name in studios.names():
        assert isinstance(studios[name], Studio)
