"""auxtune_checkpoints: the last checkpoint of a running trial (torch.save bytes), one per trial.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "auxtune_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["trial_id"],
            ["auxtune_trials.id"],
            name=op.f("fk_auxtune_checkpoints_trial_id_auxtune_trials"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auxtune_checkpoints")),
        sa.UniqueConstraint("trial_id", name=op.f("uq_auxtune_checkpoints_trial_id")),
    )


def downgrade() -> None:
    op.drop_table("auxtune_checkpoints")
