"""auxtune tables: studies, trial leases, per-epoch metrics, sanity checks, workers.

Revision ID: 0001
Revises:
Create Date: 2025-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "auxtune_studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("spec", JSONType, nullable=False),
        sa.Column("spec_hash", sa.String(length=64), nullable=False),
        sa.Column("directions", JSONType, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("optuna_study_id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("n_trials", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'paused', 'done', 'failed', 'cancelled')",
            name=op.f("ck_auxtune_studies_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auxtune_studies")),
        sa.UniqueConstraint("name", name=op.f("uq_auxtune_studies_name")),
        sa.UniqueConstraint("optuna_study_id", name=op.f("uq_auxtune_studies_optuna_study_id")),
    )
    op.create_table(
        "auxtune_trials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("optuna_trial_id", sa.Integer(), nullable=False),
        sa.Column("params", JSONType, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.Column("lease_id", sa.String(length=32), nullable=True),
        sa.Column("heartbeat_at", TIMESTAMP, nullable=True),
        sa.Column("lease_expires_at", TIMESTAMP, nullable=True),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("result", JSONType, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("attempt >= 1", name=op.f("ck_auxtune_trials_attempt")),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'complete', 'pruned', 'failed', 'failed_sanity')",
            name=op.f("ck_auxtune_trials_state"),
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["auxtune_studies.id"],
            name=op.f("fk_auxtune_trials_study_id_auxtune_studies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auxtune_trials")),
        sa.UniqueConstraint("optuna_trial_id", name=op.f("uq_auxtune_trials_optuna_trial_id")),
        sa.UniqueConstraint("study_id", "number", name=op.f("uq_auxtune_trials_study_id_number")),
    )
    op.create_index("ix_auxtune_trials_study_state", "auxtune_trials", ["study_id", "state"], unique=False)
    op.create_table(
        "auxtune_trial_epochs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("metrics", JSONType, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["trial_id"],
            ["auxtune_trials.id"],
            name=op.f("fk_auxtune_trial_epochs_trial_id_auxtune_trials"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auxtune_trial_epochs")),
        sa.UniqueConstraint(
            "trial_id", "attempt", "epoch", name=op.f("uq_auxtune_trial_epochs_trial_id_attempt_epoch")
        ),
    )
    op.create_table(
        "auxtune_sanity_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("figures", JSONType, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["trial_id"],
            ["auxtune_trials.id"],
            name=op.f("fk_auxtune_sanity_checks_trial_id_auxtune_trials"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auxtune_sanity_checks")),
        sa.UniqueConstraint("trial_id", "attempt", name=op.f("uq_auxtune_sanity_checks_trial_id_attempt")),
    )
    op.create_table(
        "auxtune_workers",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("last_heartbeat_at", TIMESTAMP, nullable=False),
        sa.Column("current_trial_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["current_trial_id"],
            ["auxtune_trials.id"],
            name=op.f("fk_auxtune_workers_current_trial_id_auxtune_trials"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auxtune_workers")),
    )


def downgrade() -> None:
    op.drop_table("auxtune_workers")
    op.drop_table("auxtune_sanity_checks")
    op.drop_table("auxtune_trial_epochs")
    op.drop_index("ix_auxtune_trials_study_state", table_name="auxtune_trials")
    op.drop_table("auxtune_trials")
    op.drop_table("auxtune_studies")
