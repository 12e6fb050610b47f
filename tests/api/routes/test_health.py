"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from storage import Store, StoreUnavailable
from tests.api.factories import create_study, finish_trials


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
