"""Critical sections shared by every process that uses one database.

Claiming a trial touches two connections (ours and Optuna's RDBStorage), so it cannot be one transaction;
instead it runs inside a critical section keyed on the study:

* SQLite: an ``fcntl`` byte-range lock on ``<database>.lock`` beside the database file (byte = key), held
  outside any SQLite transaction, so Optuna's connection can still write while we hold it.
* PostgreSQL: ``pg_advisory_lock(namespace, key)`` on a dedicated autocommit connection; the server drops it
  if the process dies, so a killed worker never leaves a study locked.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, exc, text

#: Key of the section that runs migrations (first open of a database).
MIGRATION_KEY = -1
#: Key of the section that creates studies (name uniqueness across two schemas).
CATALOG_KEY = -2
#: First int4 of every auxtune advisory lock on PostgreSQL ("auxt"), so we never collide with other apps.
PG_LOCK_NAMESPACE = 0x61757874


class _FileLocks:
    """Process-wide fcntl locks.

    fcntl locks belong to the process, not to a thread or a descriptor, and closing *any* descriptor of the
    file drops them all: so keep one descriptor per lock file for the life of the process, and one thread
    lock per byte so two threads of one process also exclude each other.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._fds: dict[str, int] = {}
        self._thread_locks: dict[tuple[str, int], threading.Lock] = {}

    def _reset_after_fork(self) -> None:
        # A forked child holds none of its parent's fcntl locks, but may have copied a held thread lock.
        self._guard = threading.Lock()
        self._fds = {}
        self._thread_locks = {}

    @contextmanager
    def hold(self, path: Path, offset: int) -> Iterator[None]:
        name = str(path)
        with self._guard:
            fd = self._fds.get(name)
            if fd is None:
                fd = os.open(name, os.O_RDWR | os.O_CREAT, 0o644)
                self._fds[name] = fd
            thread_lock = self._thread_locks.setdefault((name, offset), threading.Lock())
        with thread_lock:
            fcntl.lockf(fd, fcntl.LOCK_EX, 1, offset, os.SEEK_SET)
            try:
                yield
            finally:
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset, os.SEEK_SET)


_FILE_LOCKS = _FileLocks()
os.register_at_fork(after_in_child=_FILE_LOCKS._reset_after_fork)


class CriticalSections:
    """Mutual exclusion by integer key across all processes and threads that use one database."""

    def __init__(self, engine: Engine, sqlite_file: Path | None) -> None:
        self._engine = engine
        self._lock_file = sqlite_file.with_name(sqlite_file.name + ".lock") if sqlite_file else None

    @property
    def lock_file(self) -> Path | None:
        """The lock file beside a SQLite database; ``None`` on PostgreSQL."""
        return self._lock_file

    @contextmanager
    def hold(self, key: int) -> Iterator[None]:
        """Hold the section ``key`` (a study id, or ``MIGRATION_KEY``/``CATALOG_KEY``) until the block exits."""
        if self._lock_file is not None:
            with _FILE_LOCKS.hold(self._lock_file, key - CATALOG_KEY):
                yield
            return
        with self._pg_advisory_lock(key):
            yield

    @contextmanager
    def _pg_advisory_lock(self, key: int) -> Iterator[None]:
        params = {"ns": PG_LOCK_NAMESPACE, "key": key}
        conn = self._engine.connect()
        try:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text("SELECT pg_advisory_lock(:ns, :key)"), params)
            try:
                yield
            finally:
                try:
                    conn.execute(text("SELECT pg_advisory_unlock(:ns, :key)"), params)
                except exc.SQLAlchemyError:
                    # Never hand a connection that may still hold the lock back to the pool; closing the
                    # session releases it on the server.
                    conn.invalidate()
        finally:
            conn.close()
