"""asset studio; audit rows for refused face swaps

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 12:30:00

`asset.studio` names the studio that made an asset, beside its media kind, so the gallery filters on
the server. Existing rows are filled from their job's kind. `faceswap_audit.consent_id` becomes
nullable: an attempt refused before any consent was recorded is audited too.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("asset") as batch:
        batch.add_column(sa.Column("studio", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch.create_index("ix_asset_studio", ["studio"], unique=False)
    op.execute("UPDATE asset SET studio = (SELECT job.kind FROM job WHERE job.id = asset.job_id) "
               "WHERE asset.job_id IS NOT NULL")
    with op.batch_alter_table("faceswap_audit") as batch:
        batch.alter_column("consent_id", existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM faceswap_audit WHERE consent_id IS NULL")
    with op.batch_alter_table("faceswap_audit") as batch:
        batch.alter_column("consent_id", existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=False)
    with op.batch_alter_table("asset") as batch:
        batch.drop_index("ix_asset_studio")
        batch.drop_column("studio")
