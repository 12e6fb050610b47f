"""auxtune_tokens.from_env: marks the admin token that came from AUXTUNE_ADMIN_TOKEN, so a new value revokes it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("auxtune_tokens") as batch:
        batch.add_column(sa.Column("from_env", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("auxtune_tokens") as batch:
        batch.drop_column("from_env")
