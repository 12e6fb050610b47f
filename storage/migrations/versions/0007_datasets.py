"""auxtune_datasets, auxtune_blobs, auxtune_blob_chunks: uploaded data sets in the store, their bytes chunked by sha256.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "auxtune_blobs",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_auxtune_blobs")),
    )
    op.create_table(
        "auxtune_blob_chunks",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["sha256"], ["auxtune_blobs.sha256"],
                                name=op.f("fk_auxtune_blob_chunks_sha256_auxtune_blobs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("sha256", "seq", name=op.f("pk_auxtune_blob_chunks")),
    )
    op.create_table(
        "auxtune_datasets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("meta", JSONType, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["sha256"], ["auxtune_blobs.sha256"],
                                name=op.f("fk_auxtune_datasets_sha256_auxtune_blobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auxtune_datasets")),
    )
    op.create_index("ix_auxtune_datasets_sha256", "auxtune_datasets", ["sha256"])


def downgrade() -> None:
    op.drop_index("ix_auxtune_datasets_sha256", table_name="auxtune_datasets")
    op.drop_table("auxtune_datasets")
    op.drop_table("auxtune_blob_chunks")
    op.drop_table("auxtune_blobs")
