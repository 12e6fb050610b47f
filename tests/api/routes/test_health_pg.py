"""``/healthz`` on a real PostgreSQL: it tells a dropped connection (the server is there: 200) from a database
that cannot be reached (503), and never names the database to anonymous callers."""

from __future__ import annotations

import warnings
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from api.main import create_app
from tests.api.conftest import make_settings
from tests.conftest import PG_ADMIN_URL

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def test_healthz_is_truthful_about_postgresql(fresh_pg_database_url: str, tmp_path: Path) -> None:
    name = make_url(fresh_pg_database_url).database
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")

    def sql(statement: str) -> None:
        with admin.connect() as conn:
            conn.execute(text(statement))

    terminate = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    try:
        with TestClient(create_app(make_settings(tmp_path, db=fresh_pg_database_url))) as client:
            assert client.get("/healthz").status_code == 200
            sql(terminate)  # every pooled connection is dead, the server is up: one retry on a new connection
            r = client.get("/healthz")
            assert r.status_code == 200, r.text
            sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            sql(terminate)
            r = client.get("/healthz")
            assert r.status_code == 503 and r.json()["status"] == "unavailable", r.text
            for secret in (name, "postgres", "127.0.0.1", "5432"):
                assert secret not in r.text
            sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            assert client.get("/healthz").status_code == 200
    finally:
        sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.dispose()
