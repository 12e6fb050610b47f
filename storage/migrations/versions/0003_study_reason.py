"""auxtune_studies.status_reason: why a study is in its status (a failed study-level sanity gate, ...).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("auxtune_studies") as batch:
        batch.add_column(sa.Column("status_reason", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("auxtune_studies") as batch:
        batch.drop_column("status_reason")
