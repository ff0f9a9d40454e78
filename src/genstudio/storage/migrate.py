"""Schema migrations with Alembic: every database (SQLite or PostgreSQL) is brought to head on start."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


# Any constant: the key of the PostgreSQL advisory lock that serialises migrations.
_PG_LOCK_KEY = 0x6E5757D10


@contextmanager
def _sqlite_lock(engine: Engine) -> Iterator[None]:
    """An exclusive file lock beside a SQLite database: one process migrates at a time."""
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`. Safe when a server and several workers start at once:
    PostgreSQL takes a transaction-scoped advisory lock (DDL is transactional there, so the second
    process waits, then finds the schema at head); SQLite takes a file lock beside the database."""
    cfg = _config()
    if engine.dialect.name == "sqlite":
        with _sqlite_lock(engine), engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()
