"""Shared fixtures: a real SQLite file and a real, fresh PostgreSQL database for every store-backed test.

PostgreSQL comes from ``$AUXTUNE_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/test``): each test
gets its own ``auxtune_test_<random>`` database, dropped afterwards. Tests on PostgreSQL are skipped, with the
reason, when that server cannot be reached.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import optuna
import pytest
from sqlalchemy import create_engine, exc, text
from sqlalchemy.engine import make_url

PG_ADMIN_URL = os.environ.get("AUXTUNE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

optuna.logging.set_verbosity(optuna.logging.WARNING)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` are skipped, saying so, on a machine where torch sees no CUDA GPU."""
    gpu_tests = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_tests:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch sees none here); run bench/gpu.py on a GPU machine")
    for item in gpu_tests:
        item.add_marker(skip)


def _pg_admin_engine():  # type: ignore[no-untyped-def]
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})


@pytest.fixture(scope="session")
def pg_available() -> str | None:
    """``None`` if PostgreSQL answers, else why not."""
    engine = _pg_admin_engine()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except exc.SQLAlchemyError as e:
        return str(e.orig if getattr(e, "orig", None) else e).splitlines()[0]
    finally:
        engine.dispose()


def _require_pg(pg_available: str | None) -> None:
    if pg_available is None:
        return
    message = f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {pg_available}"
    if os.environ.get("CI"):  # CI must run the store tests on both engines: a skip there would hide failures
        pytest.fail(message + " (CI needs it: start it with scripts/ensure-postgres.sh)")
    pytest.skip(message)


@pytest.fixture
def fresh_pg_url(pg_available: str | None) -> Iterator[str]:
    """A URL whose tables land in a brand-new PostgreSQL schema (``search_path``), dropped after the test.

    A schema per test is ~5x cheaper than a database per test; ``fresh_pg_database_url`` gives a whole one.
    """
    _require_pg(pg_available)
    schema = f"auxtune_test_{uuid.uuid4().hex[:12]}"
    engine = _pg_admin_engine()
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(PG_ADMIN_URL)
        yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def fresh_pg_database_url(pg_available: str | None) -> Iterator[str]:
    """A URL of a brand-new PostgreSQL database, dropped (with any connection left to it) after the test."""
    _require_pg(pg_available)
    name = f"auxtune_test_{uuid.uuid4().hex[:12]}"
    engine = _pg_admin_engine()
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A fresh, empty database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'auxtune.db'}"
    return str(request.getfixturevalue("fresh_pg_url"))
