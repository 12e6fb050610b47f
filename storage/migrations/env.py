"""Alembic environment of auxtune's tables.

Run programmatically by ``storage.migrate.upgrade`` (which passes its connection in
``config.attributes["connection"]``), or by hand for a new revision::

    AUXTUNE_DB=sqlite:///./dev.db alembic -c storage/migrations/alembic.ini revision --autogenerate -m "..."

Only tables named ``auxtune_*`` are ours; Optuna's tables in the same database are ignored, and our revision
lives in ``auxtune_alembic_version`` (Optuna's is ``alembic_version``).
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from storage.database import resolve_url
from storage.migrate import VERSION_TABLE, include_object
from storage.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        include_object=include_object,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_online() -> None:
    connection: Any = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(resolve_url(config.get_main_option("sqlalchemy.url") or None), poolclass=pool.NullPool)
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("auxtune migrations run online only (they need to know the dialect)")
run_migrations_online()
