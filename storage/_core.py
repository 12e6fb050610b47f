"""What every part of the store shares: opening the database, the one session scope, critical sections, time."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import optuna
from sqlalchemy import exc, func, literal
from sqlalchemy.orm import Session, sessionmaker

from storage import database, migrate
from storage.database import first_line, safe_url, translate
from storage.errors import StoreError, StoreUnavailable, StudyNotFound
from storage.locks import MIGRATION_KEY, SECTION_WAIT_S, CriticalSections
from storage.models import StudyModel
from storage.records import StudyRecord

logger = logging.getLogger(__name__)

#: Study objects kept per (study, sampler, pruner): Optuna's trial cache lives in them, so a worker's asks
#: stay cheap as the study grows.
_STUDY_CACHE_SIZE = 16


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes (stored in UTC); PostgreSQL gives aware ones."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def json_safe(obj: Any) -> Any:
    """JSON (and PostgreSQL) has no NaN/inf: store them as ``None``; tuples become lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def spec_hash(spec: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a spec (sorted keys, no whitespace): equal specs, equal hashes."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def study_record(row: StudyModel) -> StudyRecord:
    return StudyRecord(
        id=row.id,
        name=row.name,
        spec=dict(row.spec),
        spec_hash=row.spec_hash,
        directions=list(row.directions),
        status=row.status,
        optuna_study_id=row.optuna_study_id,
        owner=row.owner,
        n_trials=row.n_trials,
        created_at=as_utc(row.created_at) or utcnow(),
        updated_at=as_utc(row.updated_at) or utcnow(),
        status_reason=row.status_reason or "",
    )


class StoreCore:
    """Opens the database (Optuna's schema, then ours via Alembic) and provides the shared plumbing."""

    def __init__(self, url: str | None = None, *, busy_timeout_s: float = database.DEFAULT_BUSY_TIMEOUT_S,
                 section_wait_s: float = SECTION_WAIT_S) -> None:
        self._url = database.resolve_url(url)
        self._is_postgres = self._url.get_backend_name() == "postgresql"
        database.check_sqlite_location(self._url)
        self._closed = False
        with database.unavailable_on_error(self._url):
            self._engine = database.create_store_engine(self._url, busy_timeout_s)
            lock_engine = database.create_lock_engine(self._url) if self._is_postgres else None
            self._sections = CriticalSections(lock_engine, database.sqlite_path(self._url), section_wait_s)
            with self._engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            self._optuna_storage = self._open_schemas(busy_timeout_s)
        self._sessionmaker = sessionmaker(self._engine, expire_on_commit=False)
        self._study_cache: OrderedDict[tuple[int, int, int], optuna.Study] = OrderedDict()
        self._study_cache_lock = threading.Lock()
        #: Studies this process already ran the repair pass on (``ClaimOps._reconcile``).
        self._reconciled: set[int] = set()
        #: The last front size counted per multi-objective study (``ParetoOps.pareto_sizes``), with its key.
        self._pareto_sizes: OrderedDict[int, tuple[tuple[Any, ...], Any]] = OrderedDict()
        self._pareto_sizes_lock = threading.Lock()

    def _open_schemas(self, busy_timeout_s: float) -> optuna.storages.RDBStorage:
        kwargs = database.engine_kwargs(self._url, busy_timeout_s)
        url = self._url.render_as_string(hide_password=False)
        if migrate.is_current(self._engine):
            # Ours is created after Optuna's, so Optuna's tables exist too: no lock needed.
            storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        else:
            # First open (or an upgrade): several processes may get here at once; one creates, the others wait.
            with self._sections.hold(MIGRATION_KEY):
                storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
                migrate.upgrade(self._engine)
        if self._url.get_backend_name() == "sqlite":
            # Optuna's connections get our pragmas too (its busy timeout is already in connect_args).
            database.install_sqlite_pragmas(storage.engine, busy_timeout_s)
            storage.engine.dispose()
        else:
            database.install_idle_ping(storage.engine)
        return storage

    # -- lifecycle -----------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The resolved database URL (a SQLite path made absolute); it includes the password, if any."""
        return self._url.render_as_string(hide_password=False)

    @property
    def safe_url(self) -> str:
        """The URL with its password masked, for messages."""
        return safe_url(self._url)

    @property
    def optuna_storage(self) -> optuna.storages.RDBStorage:
        """Optuna's storage on the same database (for ``optuna.load_study`` and optuna-dashboard)."""
        return self._optuna_storage

    def close(self) -> None:
        """Release every connection; the store is unusable afterwards."""
        if self._closed:
            return
        self._closed = True
        self._study_cache.clear()
        self._optuna_storage.remove_session()
        self._optuna_storage.engine.dispose()
        self._sections.close()
        self._engine.dispose()

    def __enter__(self) -> StoreCore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------------------------
    @contextmanager
    def session(self, doing: str = "accessing the store") -> Iterator[Session]:
        """The one session scope: commits on success, rolls back on error, maps database errors to ours.

        Never call Optuna inside it: on SQLite our open write transaction would block Optuna's connection.
        Inside a critical section it commits only while the section's lock is still ours (``SectionLost``).
        """
        session = self._sessionmaker()
        try:
            yield session
            self._sections.check_still_held(session)
            session.commit()
        except exc.SQLAlchemyError as e:
            self._rollback(session)
            raise translate(e, self._url, doing) from e
        except BaseException:
            self._rollback(session)
            raise
        finally:
            session.close()

    @staticmethod
    def _rollback(session: Session) -> None:
        try:
            session.rollback()
        except exc.SQLAlchemyError:  # the connection is gone; the server rolls back on its own
            logger.debug("rollback failed", exc_info=True)

    @contextmanager
    def _optuna_errors(self, doing: str) -> Iterator[None]:
        """Map Optuna's storage errors (and the SQLAlchemy errors under them) to ours."""
        try:
            yield
        except optuna.exceptions.StorageInternalError as e:
            cause = e.__cause__
            if isinstance(cause, exc.SQLAlchemyError):
                raise translate(cause, self._url, doing) from e
            raise StoreError(f"Optuna storage error while {doing}: {first_line(e)}") from e
        except exc.SQLAlchemyError as e:
            raise translate(e, self._url, doing) from e

    @contextmanager
    def _critical_section(self, key: int) -> Iterator[None]:
        """Exclusive across every process and thread on this database, per key (usually a study id)."""
        try:
            with self._sections.hold(key):
                yield
        except exc.SQLAlchemyError as e:
            raise translate(e, self._url, "taking a lock") from e
        except OSError as e:
            raise StoreUnavailable(f"cannot lock {self._sections.lock_file}: {e.strerror or e}") from e

    def _now(self) -> Any:
        """The current time as a value for SQL: the server's clock on PostgreSQL (workers on several machines
        then agree on lease ages whatever their own clocks say), this machine's on SQLite."""
        return func.now() if self._is_postgres else utcnow()

    def _before(self, seconds: float) -> Any:
        """The time ``seconds`` ago, on the same clock as ``_now()``."""
        return self._after(-seconds)

    def _after(self, seconds: float) -> Any:
        """The time in ``seconds``, on the same clock as ``_now()`` (a SQL expression on PostgreSQL)."""
        if self._is_postgres:
            return func.now() + literal(timedelta(seconds=seconds))
        return utcnow() + timedelta(seconds=seconds)

    def get_study(self, name_or_id: int | str) -> StudyRecord:
        """The study with that id (``int``) or name (``str``); ``StudyNotFound`` if none."""
        with self.session("reading a study") as session:
            if isinstance(name_or_id, int):
                return study_record(StudyModel.find_or_raise(session, name_or_id))
            row = StudyModel.find_by_name(session, name_or_id)
            if row is None:
                raise StudyNotFound(f"no study named {name_or_id!r}")
            return study_record(row)

    def optuna_study(
        self,
        study: StudyRecord,
        sampler: optuna.samplers.BaseSampler | None = None,
        pruner: optuna.pruners.BasePruner | None = None,
    ) -> optuna.Study:
        """The Optuna study behind ``study``, using the given sampler and pruner (cached per trio)."""
        key = (study.optuna_study_id, id(sampler), id(pruner))
        with self._study_cache_lock:
            cached = self._study_cache.get(key)
            if cached is not None:
                self._study_cache.move_to_end(key)
                return cached
        with self._optuna_errors("loading the Optuna study"):
            loaded = optuna.load_study(
                study_name=study.name, storage=self._optuna_storage, sampler=sampler, pruner=pruner
            )
        with self._study_cache_lock:
            self._study_cache[key] = loaded
            while len(self._study_cache) > _STUDY_CACHE_SIZE:
                self._study_cache.popitem(last=False)
        return loaded

