"""Schema creation and migrations: fresh databases, re-opening, several processes opening at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from storage import Store
from storage.migrate import (
    HEAD,
    VERSION_TABLE,
    alembic_config,
    current_revision,
    head_revision,
    include_object,
    is_current,
)
from storage.models import Base
from tests.storage.store_factories import make_study

WORKER = str(Path(__file__).with_name("store_worker.py"))
OURS = {"auxtune_studies", "auxtune_trials", "auxtune_trial_epochs", "auxtune_sanity_checks", "auxtune_workers",
        "auxtune_runs", "auxtune_artifacts", "auxtune_datasets", "auxtune_blobs", "auxtune_blob_chunks",
        VERSION_TABLE}


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_a_fresh_database_gets_optunas_schema_and_ours_at_head(store: Store) -> None:
    names = tables(store.url)
    assert OURS <= names
    assert {"studies", "trials", "trial_params", "alembic_version"} <= names  # Optuna's, untouched by us
    with store._engine.connect() as conn:
        assert current_revision(conn) == head_revision()


def test_the_head_every_open_compares_with_is_alembics(store: Store) -> None:
    """``HEAD`` must move with each new migration, or every open would think a current database is behind."""
    assert HEAD == head_revision()
    assert is_current(store._engine)
    with store._engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {VERSION_TABLE} SET version_num = '0004'")
    assert not is_current(store._engine)


def test_is_current_on_a_database_without_our_tables(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert not is_current(engine)
    finally:
        engine.dispose()


def test_trial_numbers_are_unique_per_study_in_the_schema(store: Store) -> None:
    engine = create_engine(store.url)
    try:
        uniques = {tuple(u["column_names"]) for u in inspect(engine).get_unique_constraints("auxtune_trials")}
    finally:
        engine.dispose()
    assert ("study_id", "number") in uniques


def test_reopening_is_idempotent_and_keeps_data(store: Store) -> None:
    study = make_study(store)
    for _ in range(2):
        again = Store(store.url)
        assert again.get_study(study.id) == study
        again.close()


def test_models_match_the_migrations(store: Store) -> None:
    with store._engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_object": include_object, "compare_type": True, "version_table": VERSION_TABLE})
        assert compare_metadata(context, Base.metadata) == []


def test_downgrade_and_upgrade_again(store: Store) -> None:
    with store._engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    assert not (OURS - {VERSION_TABLE}) & tables(store.url)
    store.close()
    reopened = Store(store.url)
    assert OURS <= tables(reopened.url)
    reopened.close()


def test_a_database_made_by_plain_optuna_is_extended_not_touched(db_url: str) -> None:
    plain = optuna.create_study(study_name="legacy", storage=db_url)
    plain.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    store = Store(db_url)
    try:
        assert OURS <= tables(db_url)
        assert len(optuna.load_study(study_name="legacy", storage=store.url).trials) == 2
    finally:
        store.close()


def _open_concurrently(url: str, n: int = 4) -> None:
    procs = [subprocess.Popen([sys.executable, WORKER, "open", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(n)]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == {"ok": True}


def test_several_processes_opening_a_new_sqlite_file_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    _open_concurrently(url)
    assert OURS <= tables(url)


def test_several_processes_opening_a_new_postgresql_database_at_once(fresh_pg_database_url: str) -> None:
    _open_concurrently(fresh_pg_database_url)
    store = Store(fresh_pg_database_url)
    try:
        assert make_study(store).id == 1
    finally:
        store.close()


def test_the_sqlite_lock_file_sits_beside_the_database(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        store.claim_trial(make_study(store).id, "w1")
        assert (tmp_path / "a.db.lock").exists()
    finally:
        store.close()


def test_sqlite_connections_use_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'a.db'}", busy_timeout_s=12.5)
    try:
        for engine in (store._engine, store.optuna_storage.engine):  # ours and Optuna's
            with engine.connect() as conn:
                pragmas = [conn.exec_driver_sql(f"PRAGMA {p}").scalar()
                           for p in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")]
            assert pragmas == ["wal", 12500, 1, 1]
    finally:
        store.close()
