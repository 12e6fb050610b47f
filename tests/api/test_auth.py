"""Bearer tokens: 401 without a valid one, 403 on another owner's study, the first admin token, --no-auth."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from storage import Store
from tests.api.conftest import make_settings
from tests.api.factories import ADMIN, STUDIES, create_study, finish_trials, spec, user

# Every endpoint that needs a token, with a method and a path (study id 1 exists in the tests below).
GUARDED = [("POST", STUDIES), ("GET", STUDIES), ("GET", f"{STUDIES}/1"), ("GET", f"{STUDIES}/1/best"),
           ("GET", f"{STUDIES}/1/trials"), ("GET", f"{STUDIES}/1/trials/0"), ("POST", f"{STUDIES}/1/pause"),
           ("POST", f"{STUDIES}/1/resume"), ("POST", f"{STUDIES}/1/cancel"), ("DELETE", f"{STUDIES}/1"),
           ("POST", "/api/v1/datasets"), ("GET", "/api/v1/datasets/" + "0" * 32), ("POST", "/api/v1/tokens"),
           ("GET", "/api/v1/workers")]


@pytest.mark.parametrize("authorization", [None, "Bearer axt_wrong", "Basic YWRtaW46YWRtaW4=", "Bearer "])
def test_every_guarded_endpoint_is_401_without_a_valid_token(client: TestClient, authorization: str | None) -> None:
    create_study(client)
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in GUARDED:
        r = client.request(method, path, headers=headers, json=spec("x") if method == "POST" else None)
        assert r.status_code == 401, (method, path, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["detail"][0]["loc"] == ["header", "Authorization"]


def test_another_owners_study_is_403_everywhere(client: TestClient, store: Store) -> None:
    alice, bob = user(client, "alice"), user(client, "bob")
    sid = create_study(client, headers=alice)["id"]
    finish_trials(store, sid, [0.5])
    for method, path in GUARDED[2:10]:
        r = client.request(method, path.replace("/1", f"/{sid}", 1), headers=bob)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["detail"][0]["loc"] == ["path", "study_id"]
    assert client.get(f"{STUDIES}/{sid}/best", headers=alice).status_code == 200
    assert client.get(f"{STUDIES}/{sid}/best", headers=ADMIN).status_code == 200


def test_public_endpoints_need_no_token(client: TestClient) -> None:
    for path in ("/healthz", "/metrics", "/api/v1/workloads", "/docs", "/api/v1/openapi.json"):
        assert client.get(path).status_code == 200, path


def test_the_first_start_creates_an_admin_token_and_prints_it_once(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path, admin_token=None)
    with TestClient(create_app(settings)):
        pass
    printed = capfd.readouterr().err
    token = printed.split("store it): ")[1].split()[0]
    with TestClient(create_app(settings)) as client:  # second start: nothing new, nothing printed
        assert client.get(STUDIES, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.post("/api/v1/tokens", json={"owner": "x"},
                           headers={"Authorization": f"Bearer {token}"}).status_code == 201
    assert "admin token" not in capfd.readouterr().err


def test_the_admin_token_can_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUXTUNE_ADMIN_TOKEN", "axt_from-env-long-enough-to-be-safe")
    monkeypatch.setenv("AUXTUNE_DB", f"sqlite:///{tmp_path / 'env.db'}")
    monkeypatch.setenv("AUXTUNE_DATA_DIR", str(tmp_path / "data"))
    with TestClient(create_app()) as client:
        env_token = {"Authorization": "Bearer axt_from-env-long-enough-to-be-safe"}
        assert client.get(STUDIES, headers=env_token).status_code == 200
        assert client.get(STUDIES, headers=ADMIN).status_code == 401


def test_no_auth_lets_every_caller_act_as_an_admin_without_owner(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, auth=False)), base_url="http://127.0.0.1") as client:
        created = create_study(client, headers={})
        assert created["owner"] is None
        assert client.get(f"{STUDIES}/{created['id']}").status_code == 200
        assert client.post("/api/v1/tokens", json={"owner": "x"}).status_code == 201
