"""Alembic environment: runs on the connection genstudio hands it (see storage/migrate.py)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import genstudio.storage.db  # noqa: F401 - registers the tables on SQLModel.metadata

target_metadata = SQLModel.metadata
connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
