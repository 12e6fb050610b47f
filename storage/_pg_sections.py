"""PostgreSQL critical sections: advisory locks that neither starve the work pool nor outlive their connection.

Three rules, each against a failure seen under load (issue #14):

* Lock connections come from a pool of their own (``database.create_lock_engine``). Taken from the work pool,
  15 threads waiting for one section held all 15 connections while the thread inside, which needs one more
  for its work, timed out: 500s, and every other request of the process waited 30 s for a connection.
* Threads of one process queue for a key on a thread lock, not on the server, so a burst of requests holds
  one lock connection per key, not one per request; entering waits at most ``wait_s`` for the holder, then
  raises ``SectionBusy`` (the API answers 503) instead of hanging.
* A session lock dies with its connection: once that connection is terminated, the next process may enter
  while we are still inside. So every transaction we commit inside a section first checks, *in that
  transaction*, that our lock connection still holds the lock, under a shared "fence" lock that whoever
  enters the section takes exclusively once, right after the main lock. A check that passed therefore
  commits before anyone else is inside; a check that fails rolls its transaction back (``SectionLost``).
  (Optuna's own writes are not fenced: Optuna is safe under concurrent workers by itself, and what a lost
  section leaves half-done is what a crash leaves, which the store repairs; see ``storage._ledger``.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, exc, text
from sqlalchemy.orm import Session

from storage.errors import SectionBusy, SectionLost

#: First int4 of every auxtune advisory lock on PostgreSQL ("auxt"), so we never collide with other apps.
PG_LOCK_NAMESPACE = 0x61757874
#: First int4 of the fence beside each section's lock ("auxf"; see the module docstring).
PG_FENCE_NAMESPACE = 0x61757866
#: SQLSTATE of a lock wait cut short by ``lock_timeout``.
_LOCK_NOT_AVAILABLE = "55P03"

# One round trip: bound the wait, learn who we are (the check below names our backend), take the lock.
# PostgreSQL evaluates a select list left to right.
_ENTER = text(
    "SELECT set_config('lock_timeout', :timeout, false), pg_backend_pid(), "
    "(SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()), pg_advisory_lock(:ns, :key)")
_PASS_FENCE = text("SELECT pg_advisory_lock(:ns, :key), pg_advisory_unlock(:ns, :key)")
_UNLOCK = text("SELECT pg_advisory_unlock(:ns, :key)")
_FENCE_SHARED = text("SELECT pg_advisory_xact_lock_shared(:ns, :key)")
# pg_locks shows the two int4 of a lock as oids (unsigned), in classid and objid, with objsubid 2; the
# backend's start time tells our connection from a later one that was given the same pid.
_STILL_HELD = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.classid::bigint = :ns "
    "AND l.objid::bigint = :objid AND l.pid = :pid AND a.backend_start = :started)")


@dataclass(frozen=True)
class _Held:
    """A section this thread is inside, and the server session (pid, start time) that holds its lock."""

    key: int
    what: str
    pid: int
    started: datetime


class _Waiters:
    """Users of one key's thread lock: the entry is dropped once nobody holds or waits for it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0


class _KeyedThreadLocks:
    """One thread lock per key, made on first use and forgotten when unused (an API process touches many
    studies over its life)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._entries: dict[int, _Waiters] = {}

    @contextmanager
    def hold(self, key: int, timeout_s: float) -> Iterator[bool]:
        """Hold the key's lock, waiting at most ``timeout_s``; yields whether it was acquired."""
        with self._guard:
            entry = self._entries.setdefault(key, _Waiters())
            entry.count += 1
        acquired = False
        try:
            acquired = entry.lock.acquire(timeout=max(timeout_s, 0.0))
            yield acquired
        finally:
            if acquired:
                entry.lock.release()
            with self._guard:
                entry.count -= 1
                if not entry.count:
                    del self._entries[key]


class PgSections:
    """Mutual exclusion by integer key across every process and thread on one PostgreSQL database."""

    def __init__(self, lock_engine: Engine, wait_s: float) -> None:
        self._engine = lock_engine
        self._wait_s = wait_s
        self._thread_locks = _KeyedThreadLocks()
        self._local = threading.local()

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def hold(self, key: int, what: str) -> Iterator[None]:
        """Hold section ``key`` (named ``what`` in messages) until the block exits.

        Raises:
            SectionBusy: another thread or process held it for all of ``wait_s``.
        """
        deadline = time.monotonic() + self._wait_s
        with self._thread_locks.hold(key, self._wait_s) as acquired:
            if not acquired:
                raise self._busy(what)
            with self._engine.connect() as conn:
                held = self._enter(conn, key, what, deadline)
                stack = self._stack()
                stack.append(held)
                try:
                    yield
                finally:
                    stack.remove(held)
                    self._leave(conn, key)

    def check_still_held(self, session: Session) -> None:
        """Before ``session`` commits: the sections this thread is inside must still be ours.

        Raises:
            SectionLost: a lock's connection dropped, so another process may be inside; do not commit.
        """
        for held in self._stack():
            session.execute(_FENCE_SHARED, {"ns": PG_FENCE_NAMESPACE, "key": held.key})
            still = session.execute(_STILL_HELD, {"ns": PG_LOCK_NAMESPACE, "objid": held.key & 0xFFFFFFFF,
                                                  "pid": held.pid, "started": held.started}).scalar()
            if not still:
                raise SectionLost(
                    f"lost the lock of {held.what} (its database connection dropped), so another process may "
                    "be inside it: rolled back instead of committing; retry")

    def _stack(self) -> list[_Held]:
        stack: list[_Held] | None = getattr(self._local, "held", None)
        if stack is None:
            stack = self._local.held = []
        return stack

    def _enter(self, conn: Connection, key: int, what: str, deadline: float) -> _Held:
        timeout_ms = max(1, int((deadline - time.monotonic()) * 1000))
        try:
            row = conn.execute(_ENTER, {"timeout": f"{timeout_ms}ms", "ns": PG_LOCK_NAMESPACE, "key": key}).one()
        except exc.OperationalError as e:
            if _sqlstate(e) == _LOCK_NOT_AVAILABLE:  # not taken: the connection is clean
                raise self._busy(what) from None
            conn.invalidate()
            raise
        except BaseException:
            conn.invalidate()  # interrupted mid-wait: the server may still grant it; closing drops it
            raise
        try:
            # Wait until transactions that checked the previous holder have ended (see the module docstring).
            conn.execute(_PASS_FENCE, {"ns": PG_FENCE_NAMESPACE, "key": key})
        except BaseException as e:
            conn.invalidate()  # we hold the lock: closing the server session is the sure way to drop it
            if isinstance(e, exc.OperationalError) and _sqlstate(e) == _LOCK_NOT_AVAILABLE:
                raise self._busy(what) from None
            raise
        return _Held(key, what, int(row[1]), row[2])

    @staticmethod
    def _leave(conn: Connection, key: int) -> None:
        try:
            conn.execute(_UNLOCK, {"ns": PG_LOCK_NAMESPACE, "key": key})
        except exc.SQLAlchemyError:
            # Never hand a connection that may still hold the lock back to the pool; closing the server
            # session releases it.
            conn.invalidate()

    def _busy(self, what: str) -> SectionBusy:
        return SectionBusy(f"the store is busy: {what} stayed in use by another request or worker for "
                           f"{self._wait_s:g} s; retry in a moment")


def _sqlstate(error: exc.DBAPIError) -> str | None:
    orig = error.orig
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
