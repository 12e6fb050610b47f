"""Critical sections shared by every process that uses one database.

Claiming a trial touches two connections (ours and Optuna's RDBStorage), so it cannot be one transaction;
instead it runs inside a critical section keyed on the study:

* SQLite: an ``fcntl`` byte-range lock on ``<database>.lock`` beside the database file (byte = key), held
  outside any SQLite transaction, so Optuna's connection can still write while we hold it.
* PostgreSQL: ``pg_advisory_lock(namespace, key)`` on a connection of a pool of its own (see
  ``storage._pg_sections``); the server drops it if the process dies, so a killed worker never leaves a study
  locked. Threads of one process queue for a key in the process, not on the server, and entering waits at
  most ``SECTION_WAIT_S`` (then ``SectionBusy``); a transaction committed inside the section first checks
  that the lock is still held (else ``SectionLost``, and it rolls back).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from storage._pg_sections import PG_LOCK_NAMESPACE, PgSections

__all__ = ["CATALOG_KEY", "MIGRATION_KEY", "PG_LOCK_NAMESPACE", "SECTION_WAIT_S", "CriticalSections"]

#: Key of the section that runs migrations (first open of a database).
MIGRATION_KEY = -1
#: Key of the section that creates studies (name uniqueness across two schemas).
CATALOG_KEY = -2
#: How long entering a section on PostgreSQL waits for its holder before it raises ``SectionBusy``. Sections
#: last milliseconds (a sampler's ask at most seconds), so a wait this long means something is stuck.
SECTION_WAIT_S = 30.0


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
    """Mutual exclusion by integer key across all processes and threads that use one database.

    Give ``lock_engine`` (``database.create_lock_engine``) on PostgreSQL, ``sqlite_file`` on SQLite.
    """

    def __init__(self, lock_engine: Engine | None, sqlite_file: Path | None, wait_s: float = SECTION_WAIT_S) -> None:
        self._lock_file = sqlite_file.with_name(sqlite_file.name + ".lock") if sqlite_file else None
        self._pg = PgSections(lock_engine, wait_s) if lock_engine is not None and sqlite_file is None else None
        if self._lock_file is None and self._pg is None:
            raise ValueError("give lock_engine (PostgreSQL) or sqlite_file (SQLite)")

    @property
    def lock_file(self) -> Path | None:
        """The lock file beside a SQLite database; ``None`` on PostgreSQL."""
        return self._lock_file

    def close(self) -> None:
        """Release the lock connections (PostgreSQL)."""
        if self._pg is not None:
            self._pg.close()

    @contextmanager
    def hold(self, key: int) -> Iterator[None]:
        """Hold the section ``key`` (a study id, or ``MIGRATION_KEY``/``CATALOG_KEY``) until the block exits.

        Raises:
            SectionBusy: (PostgreSQL) another thread or process held it for ``wait_s``.
        """
        if self._pg is not None:
            with self._pg.hold(key, describe(key)):
                yield
            return
        assert self._lock_file is not None
        with _FILE_LOCKS.hold(self._lock_file, key - CATALOG_KEY):
            yield

    def check_still_held(self, session: Session) -> None:
        """Call before ``session`` commits: raises ``SectionLost`` if a section this thread is inside lost its
        lock (PostgreSQL; an fcntl lock lasts as long as the process)."""
        if self._pg is not None:
            self._pg.check_still_held(session)


def describe(key: int) -> str:
    """A section in words, for messages."""
    if key == MIGRATION_KEY:
        return "the schema migration"
    if key == CATALOG_KEY:
        return "the study catalog (creating studies and tokens)"
    return f"study {key}"
