"""Bring auxtune's tables to the newest revision; run by every ``Store`` when it opens a database."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: Our own revision table; Optuna keeps its revision in ``alembic_version`` in the same database.
VERSION_TABLE = "auxtune_alembic_version"
TABLE_PREFIX = "auxtune_"
#: The newest revision in ``migrations/versions``; a test holds it equal to what Alembic finds there. Every open
#: compares the database with it, so opening a current database needs no Alembic import (~0.1 s per process).
HEAD = "0009"


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Autogenerate sees only our tables (and what belongs to them), never Optuna's."""
    if type_ == "table":
        return bool(name and name.startswith(TABLE_PREFIX))
    table = getattr(obj, "table", None)
    return table is None or table.name.startswith(TABLE_PREFIX)


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision as Alembic reads it from the migration scripts."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "storage/migrations/versions has no revision"
    return head


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def is_current(engine: Engine) -> bool:
    """Whether the database is at ``HEAD`` (a cheap check that needs no lock, and no Alembic)."""
    with engine.connect() as conn:
        try:
            versions = conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalars().all()
        except DBAPIError:  # no version table: a new database
            return False
    return versions == [HEAD]


def upgrade(engine: Engine) -> None:
    """``alembic upgrade head`` on ``engine``. Callers serialise it across processes (``MIGRATION_KEY``)."""
    from alembic import command

    with engine.begin() as conn:
        before = current_revision(conn)
        command.upgrade(alembic_config(conn), "head")
        after = current_revision(conn)
    if before != after:
        logger.info("auxtune schema upgraded from %s to %s", before or "nothing", after)
