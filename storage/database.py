"""Database URLs, engines and error mapping: the only module that knows SQLite from PostgreSQL at connect time.

SQLite gets WAL mode, a busy timeout and foreign keys on every connection (ours and Optuna's share the busy
timeout), so parallel worker processes wait for each other instead of failing with "database is locked".
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url

from storage.errors import StoreError, StoreUnavailable

logger = logging.getLogger(__name__)

ENV_VAR = "AUXTUNE_DB"
DEFAULT_URL = "sqlite:///./auxtune.db"
DEFAULT_BUSY_TIMEOUT_S = 30.0
#: How long a PostgreSQL connection attempt may take before the store gives up (unless the URL says otherwise).
PG_CONNECT_TIMEOUT_S = 10
#: A pooled PostgreSQL connection idle for longer than this is pinged before use (see ``install_idle_ping``).
PG_PING_AFTER_IDLE_S = 5.0
#: Lock connections kept open for critical sections on PostgreSQL (more are opened while more keys are held).
PG_LOCK_POOL_SIZE = 2


def resolve_url(url: str | None = None) -> URL:
    """The database URL to use: ``url``, else ``$AUXTUNE_DB``, else ``sqlite:///./auxtune.db``.

    A bare path (no ``://``) is taken as a SQLite file; a SQLite path is made absolute, so every process and
    the lock file beside the database agree on one file whatever their working directory. ``postgres://``
    is accepted for ``postgresql://``.
    """
    raw = url or os.environ.get(ENV_VAR) or DEFAULT_URL
    if "://" not in raw:
        raw = "sqlite:///" + raw
    if raw.startswith("postgres://"):
        raw = "postgresql://" + raw[len("postgres://") :]
    try:
        parsed = make_url(raw)
    except exc.ArgumentError as e:
        raise StoreUnavailable(f"cannot parse database URL {raw!r}: {e}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:") or (parsed.database or "").startswith("file:"):
            raise StoreUnavailable(
                f"cannot use database {raw}: an in-memory SQLite database cannot be shared by workers; "
                "give a file, e.g. sqlite:///./auxtune.db"
            )
        parsed = parsed.set(database=str(Path(parsed.database or "").expanduser().absolute()))
    elif backend != "postgresql":
        raise StoreUnavailable(
            f"unsupported database URL {safe_url(parsed)}: use sqlite:///PATH or postgresql://USER@HOST/DB"
        )
    elif parsed.drivername == "postgresql" and not _importable("psycopg") and _importable("psycopg2"):
        # SQLAlchemy 2.1 maps postgresql:// to psycopg 3; fall back to psycopg2 where only that is installed.
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def safe_url(url: URL | str) -> str:
    """The URL with its password masked, for messages and logs."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except exc.ArgumentError:
            return "<unparsable URL>"
    return url.render_as_string(hide_password=True)


def sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL, ``None`` for PostgreSQL."""
    return Path(url.database or "") if url.get_backend_name() == "sqlite" else None


def engine_kwargs(url: URL, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> dict[str, Any]:
    """``create_engine`` keyword arguments for ``url``; used for our engine and for Optuna's RDBStorage."""
    if url.get_backend_name() == "sqlite":
        # pysqlite's ``timeout`` is SQLite's busy timeout: a writer waits this long for the lock.
        return {"connect_args": {"timeout": busy_timeout_s}}
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    return {"connect_args": connect_args}


def create_store_engine(url: URL, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> Engine:
    """Our engine; on SQLite every new connection is put in WAL mode with a busy timeout and foreign keys, on
    PostgreSQL a connection that sat idle in the pool is pinged before use."""
    engine = create_engine(url, **engine_kwargs(url, busy_timeout_s))
    if url.get_backend_name() == "sqlite":
        install_sqlite_pragmas(engine, busy_timeout_s)
    else:
        install_idle_ping(engine)
    return engine


def create_lock_engine(url: URL) -> Engine:
    """The engine of the critical sections' advisory locks on PostgreSQL (``storage._pg_sections``).

    A pool apart from the work pool, so a connection waiting for a lock never is one that the section's
    holder needs for its work. No overflow limit: one thread per key waits on the server (the others of the
    process wait on a thread lock), so it holds at most one connection per section in use at once.
    """
    engine = create_engine(url, **engine_kwargs(url), isolation_level="AUTOCOMMIT", pool_size=PG_LOCK_POOL_SIZE,
                           max_overflow=-1)
    install_idle_ping(engine)
    return engine


def install_idle_ping(engine: Engine) -> None:
    """Ping a pooled PostgreSQL connection before use only if it sat idle for ``PG_PING_AFTER_IDLE_S``.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: one more round trip per transaction, ~10 of the
    ~60 of a worker's ask+tell. A connection that was in use a moment ago is almost surely alive; one that
    idled (the server restarted, a proxy dropped it) is checked, and a dead one is replaced before the
    transaction starts (raising ``DisconnectionError`` makes the pool retry with a new connection). A
    connection that dies within the idle window fails its next transaction once (``StoreUnavailable``), and
    SQLAlchemy then invalidates the whole pool, so the next one reconnects. Also installed on Optuna's engine.
    """

    @event.listens_for(engine, "connect")
    def _fresh(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = None  # just connected: nothing to check

    @event.listens_for(engine, "checkin")
    def _idle(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PG_PING_AFTER_IDLE_S:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
            dbapi_connection.rollback()  # end the ping's implicit transaction
        except Exception as e:  # any driver error: the connection is unusable
            raise exc.DisconnectionError(f"idle connection failed its ping: {e}") from e
        if not alive:
            raise exc.DisconnectionError("idle connection failed its ping")


def install_sqlite_pragmas(engine: Engine, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
    """Set WAL mode, the busy timeout, ``synchronous=NORMAL`` and foreign keys on every new connection.

    WAL lets readers and one writer work at once; NORMAL skips the fsync per commit (safe in WAL mode: a power
    cut may lose the last commits, never the file). Also installed on Optuna's engine (see ``StoreCore``).
    """
    timeout_ms = int(busy_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL needs a lock the first time.
            cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()


def first_line(error: BaseException) -> str:
    """The first non-empty line of an error (driver errors span several lines), without SQLAlchemy's hints."""
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error)
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("(Background on this error"):
            return line
    return type(error).__name__


def is_unavailable(error: BaseException) -> bool:
    """Whether a database error means the database cannot be reached or written, rather than a bad statement."""
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, exc.OperationalError | exc.InterfaceError):
        return True
    if isinstance(error, exc.TimeoutError):  # every pooled connection stayed in use: busy, not broken
        return True
    return False


def translate(error: exc.SQLAlchemyError, url: URL, doing: str) -> StoreError:
    """Map a SQLAlchemy error to a one-line store error."""
    if is_unavailable(error):
        return StoreUnavailable(f"database {safe_url(url)} failed while {doing}: {first_line(error)}")
    return StoreError(f"database error while {doing}: {first_line(error)}")


@contextmanager
def unavailable_on_error(url: URL, what: str = "cannot open database") -> Iterator[None]:
    """Turn any error raised while opening the database into one ``StoreUnavailable`` line."""
    try:
        yield
    except StoreError:
        raise
    except ImportError as e:
        raise StoreUnavailable(f"{what} {safe_url(url)}: its driver is not installed ({e})") from e
    except (exc.SQLAlchemyError, OSError, RuntimeError) as e:
        raise StoreUnavailable(f"{what} {safe_url(url)}: {first_line(e)}") from e


def check_sqlite_location(url: URL) -> None:
    """Fail early, in words, where SQLite would only say "unable to open database file"."""
    path = sqlite_path(url)
    if path is None:
        return
    parent = path.parent
    if not parent.exists():
        raise StoreUnavailable(f"cannot open database {safe_url(url)}: directory {parent} does not exist")
    if not parent.is_dir():
        raise StoreUnavailable(f"cannot open database {safe_url(url)}: {parent} is not a directory")
    if path.exists() and path.is_dir():
        raise StoreUnavailable(f"cannot open database {safe_url(url)}: {path} is a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreUnavailable(f"cannot open database {safe_url(url)}: directory {parent} is not writable")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise StoreUnavailable(f"cannot open database {safe_url(url)}: {path} is not writable")
