"""A database that cannot be opened gives one clear line (no traceback text, no password)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from storage import DEFAULT_URL, Store, StoreUnavailable, resolve_url


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
