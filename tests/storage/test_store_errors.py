"""A database that cannot be opened gives one clear line (no traceback text, no password); PostgreSQL connections
that die while pooled are replaced."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from storage import DEFAULT_URL, Store, StoreUnavailable, database, resolve_url
from tests.conftest import PG_ADMIN_URL
from tests.storage.store_factories import make_study, suggest_lambda


def open_error(url: str) -> str:
    with pytest.raises(StoreUnavailable) as err:
        Store(url).close()
    message = str(err.value)
    assert "\n" not in message and message.strip() == message
    return message


def test_unreachable_postgresql() -> None:
    message = open_error("postgresql://postgres:s3cret@127.0.0.1:1/test")
    assert message.startswith("cannot open database postgresql://postgres:***@127.0.0.1:1/test: ")
    assert "refused" in message.lower()
    assert "s3cret" not in message


def test_postgresql_database_that_does_not_exist(pg_available: str | None) -> None:
    if pg_available is not None:
        pytest.skip(f"PostgreSQL is not reachable: {pg_available}")
    message = open_error("postgresql://postgres@127.0.0.1:5432/auxtune_no_such_db")
    assert 'database "auxtune_no_such_db" does not exist' in message


def test_sqlite_in_a_missing_directory(tmp_path: Path) -> None:
    message = open_error(f"sqlite:///{tmp_path / 'missing' / 'a.db'}")
    assert message.endswith(f"directory {tmp_path / 'missing'} does not exist")


def test_sqlite_below_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    message = open_error(f"sqlite:///{tmp_path / 'file' / 'a.db'}")
    assert message.endswith("is not a directory")


def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    assert "file is not a database" in open_error(f"sqlite:///{tmp_path / 'junk.db'}")


@pytest.mark.parametrize("url, words", [
    ("mysql://root@localhost/x", "use sqlite:///PATH or postgresql://"),
    ("sqlite://", "in-memory SQLite"),
    ("sqlite:///:memory:", "in-memory SQLite"),
])
def test_unsupported_urls(url: str, words: str) -> None:
    assert words in open_error(url)


def test_url_from_environment_default_and_bare_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUXTUNE_DB", raising=False)
    assert DEFAULT_URL == "sqlite:///./auxtune.db"
    assert resolve_url().database == str(tmp_path / "auxtune.db")
    monkeypatch.setenv("AUXTUNE_DB", f"sqlite:///{tmp_path / 'env.db'}")
    assert resolve_url().database == str(tmp_path / "env.db")
    assert resolve_url("other.db").database == str(tmp_path / "other.db")  # an explicit URL wins over the env
    assert resolve_url("postgres://u@h/db").drivername == "postgresql"
    store = Store()
    try:
        assert store.url == f"sqlite:///{tmp_path / 'env.db'}" and (tmp_path / "env.db").exists()
    finally:
        store.close()


def test_storage_imports_neither_the_engine_nor_torch_nor_fastapi() -> None:
    """Data flows api → storage ← tuner: the store stands alone."""
    code = ("import sys, storage; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tuner', 'api', 'torch', 'fastapi')); print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


# -- PostgreSQL connections that die while pooled --------------------------------------------------------------
def _drop_connections(url: str) -> int:
    """Terminate every server connection to ``url``'s database (what a server restart does to a pool)."""
    database_name = make_url(url).database
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return int(conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": database_name}).scalar() or 0)
    finally:
        admin.dispose()


def _claim_and_finish(store: Store, study_id: int, value: float) -> None:
    got = store.claim_trial(study_id, "w1", suggest_lambda, sampler=optuna.samplers.RandomSampler(seed=0))
    assert got is not None
    store.finish_trial(got, "complete", value)


def test_pooled_connections_that_died_while_idle_are_replaced(fresh_pg_database_url: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Idle connections (ours and Optuna's) are pinged before use and replaced if dead: no error reaches us."""
    monkeypatch.setattr(database, "PG_PING_AFTER_IDLE_S", 0.05)
    with Store(fresh_pg_database_url) as store:
        study = make_study(store, n_trials=3)
        store.register_worker("w1", host="h", device="cpu", pid=1)
        _claim_and_finish(store, study.id, 0.25)
        assert _drop_connections(fresh_pg_database_url) >= 2  # both engines held pooled connections
        time.sleep(0.1)
        _claim_and_finish(store, study.id, 0.5)
        assert store.counts_by_state(study.id)["complete"] == 2


def test_a_connection_that_died_within_the_idle_window_fails_once_then_the_pool_reconnects(
        fresh_pg_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the ping (idle window longer than the pause) a dead pooled connection fails one operation,
    with one clear line; the pool is then renewed, and nothing stored is lost."""
    monkeypatch.setattr(database, "PG_PING_AFTER_IDLE_S", 3600.0)
    with Store(fresh_pg_database_url) as store:
        study = make_study(store, n_trials=3)
        assert _drop_connections(fresh_pg_database_url) >= 1
        with pytest.raises(StoreUnavailable) as err:
            store.get_study(study.id)
        assert "\n" not in str(err.value) and "reading a study" in str(err.value)
        assert store.get_study(study.id).name == "demo"
