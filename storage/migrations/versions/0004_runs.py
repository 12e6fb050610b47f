"""auxtune_runs: confirmation and reference-arm runs (one λ set or weighting method × one seed), under a lease.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "auxtune_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("arm", sa.String(length=64), nullable=False),
        sa.Column("trial_number", sa.Integer(), nullable=True),
        sa.Column("params", JSONType, nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.Column("lease_id", sa.String(length=32), nullable=True),
        sa.Column("heartbeat_at", TIMESTAMP, nullable=True),
        sa.Column("lease_expires_at", TIMESTAMP, nullable=True),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("val_value", sa.Float(), nullable=True),
        sa.Column("test_value", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("result", JSONType, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("attempt >= 0", name=op.f("ck_auxtune_runs_attempt")),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'complete', 'failed')", name=op.f("ck_auxtune_runs_state")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["auxtune_studies.id"],
            name=op.f("fk_auxtune_runs_study_id_auxtune_studies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auxtune_runs")),
        sa.UniqueConstraint("study_id", "arm", "seed", name=op.f("uq_auxtune_runs_study_id_arm_seed")),
    )
    op.create_index("ix_auxtune_runs_state", "auxtune_runs", ["state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_auxtune_runs_state", table_name="auxtune_runs")
    op.drop_table("auxtune_runs")
