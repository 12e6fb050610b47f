"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from api.main import create_app
from storage import Store, StoreUnavailable
from tests.api.conftest import make_settings
from tests.api.factories import create_study, finish_trials
from tests.conftest import PG_ADMIN_URL


def test_healthz_answers_without_a_token(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_healthz_is_503_when_the_store_is_gone(
    client: TestClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down() -> int:
        raise StoreUnavailable("database sqlite:///x.db failed while counting studies: disk I/O error")

    monkeypatch.setattr(store, "count_studies", down)
    r = client.get("/healthz")
    assert r.status_code == 503 and r.json()["status"] == "unavailable"
    assert "sqlite" not in r.text  # anonymous callers learn nothing about the database


def test_metrics_count_trials_by_state_queue_depth_and_workers(client: TestClient, store: Store) -> None:
    sid = create_study(client)["id"]
    create_study(client, "other")
    finish_trials(store, sid, [0.5, None])
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    lines = set(r.text.splitlines())
    assert {'auxtune_trials{state="complete"} 1', 'auxtune_trials{state="failed_sanity"} 1',
            'auxtune_trials{state="queued"} 2', 'auxtune_studies{status="running"} 1',
            'auxtune_studies{status="queued"} 1', "auxtune_queue_depth 10", "auxtune_workers_alive 0"} <= lines
    assert "# TYPE auxtune_queue_depth gauge" in lines


def test_a_store_outage_answers_503_without_the_database_url(fresh_pg_database_url: str, tmp_path: Path) -> None:
    """An anonymous caller (a made-up token) whose request meets a database that is gone learns that it is down,
    not where it lives: no URL, host, database name or user in the body."""
    name = make_url(fresh_pg_database_url).database
    assert name
    with TestClient(create_app(make_settings(tmp_path, db=fresh_pg_database_url))) as client:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        engine.dispose()
        r = client.get("/api/v1/studies", headers={"Authorization": "Bearer axt_made-up-token"})
    assert r.status_code == 503, r.text
    (item,) = r.json()["detail"]
    assert item["type"] == "store_unavailable" and "try again" in item["msg"]
    for secret in (name, "postgres", "127.0.0.1", "5432"):
        assert secret not in r.text
