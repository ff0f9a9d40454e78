"""Schema migrations (Alembic) and the same storage and API code on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from genstudio.storage.db import Asset, Store, make_engine
from genstudio.storage.migrate import current, head
from helpers import SMALL, wait_job
from postgres import postgres_server


def test_migrations_build_exactly_the_models_schema(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert current(engine) == head() is not None
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    assert diffs == []
    assert {"job", "asset", "alembic_version"} <= set(inspect(engine).get_table_names())
    make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")  # a second start is a no-op
    assert current(engine) == head()


MIGRATE = "import sys; from genstudio.storage.db import make_engine; make_engine(sys.argv[1])"


def test_server_and_workers_migrating_one_fresh_database_at_once() -> None:
    """A cluster's server and workers all start on an empty database: none may die in the race
    (unserialised, PostgreSQL fails all but one CREATE TABLE with a duplicate pg_type key)."""
    with postgres_server() as url:
        if url is None:
            pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
        procs = [
            subprocess.Popen([sys.executable, "-c", MIGRATE, url], stderr=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, "\n".join(errors)
        assert current(make_engine(url)) == head()


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres_server() as url:
        if url is None:
            pytest.skip(
                "PostgreSQL is not installed (apt-get install postgresql) and GENSTUDIO_TEST_POSTGRES_URL unset"
            )
        yield url


def test_postgres_store_and_unique_assets(pg_url: str) -> None:
    engine = make_engine(pg_url)
    assert current(engine) == head()
    store = Store(engine)
    job = store.add_job("image", {"prompt": "größe ✓", "n": 1})
    store.update_job(job.id, status="running", attempts=1)
    assert store.get_job(job.id).params == {"prompt": "größe ✓", "n": 1}
    assert store.count_jobs(("running",)) >= 1
    store.add_asset(Asset(kind="image", mime="image/png", path="aa/a.png", job_id=job.id, position=0))
    with pytest.raises(Exception, match="uq_asset_job_position|duplicate key"):
        store.add_asset(Asset(kind="image", mime="image/png", path="aa/b.png", job_id=job.id, position=0))
    with engine.connect() as conn:
        assert conn.execute(text("select version()")).scalar().startswith("PostgreSQL")


def test_api_end_to_end_on_postgres(pg_url: str, settings) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    from genstudio.api.app import create_app

    s = settings.model_copy(update={"database_url": pg_url})
    with TestClient(create_app(s)) as client:
        r = client.post("/api/images", json={"prompt": "a lighthouse", "seed": 5, **SMALL})
        assert r.status_code == 202, r.text
        job = wait_job(client, r.json()["job_id"])
        assert job["status"] == "succeeded" and len(job["assets"]) == 1
        items = client.get("/api/gallery?kind=image").json()["items"]
        assert job["assets"][0] in [i["id"] for i in items]
        assert client.get(f"/api/assets/{job['assets'][0]}").status_code == 200
