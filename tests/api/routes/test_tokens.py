"""``/api/v1/tokens``: admins create tokens; a token works at once and is shown only once."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from storage import Store
from tests.api.factories import ADMIN, STUDIES, spec, user


def test_an_admin_creates_a_token_that_works_and_is_stored_hashed(client: TestClient, store: Store) -> None:
    r = client.post("/api/v1/tokens", json={"owner": "carol"}, headers=ADMIN)
    assert r.status_code == 201
    token = r.json()["token"]
    assert token.startswith("axt_") and r.json()["owner"] == "carol" and r.json()["is_admin"] is False
    assert client.get(STUDIES, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    with store.session() as session:
        stored = session.execute(text("SELECT token_hash FROM auxtune_tokens")).scalars()
        assert token not in set(stored)


def test_only_admins_create_tokens_and_owners_must_be_names(client: TestClient) -> None:
    r = client.post("/api/v1/tokens", json={"owner": "mallory"}, headers=user(client, "bob"))
    assert r.status_code == 403
    r = client.post("/api/v1/tokens", json={"owner": "bad name!"}, headers=ADMIN)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "owner"]
    second_admin = user(client, "ops", admin=True)
    assert client.post("/api/v1/tokens", json={"owner": "dave"}, headers=second_admin).status_code == 201


def test_admins_list_tokens_without_the_tokens_themselves(client: TestClient) -> None:
    carol = user(client, "carol")
    r = client.get("/api/v1/tokens", headers=ADMIN)
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 2 and [t["owner"] for t in body["data"]] == ["admin", "carol"]
    assert all("token" not in t for t in body["data"])
    assert carol["Authorization"].split()[1] not in r.text
    assert client.get("/api/v1/tokens", headers=carol).status_code == 403
    assert client.get("/api/v1/tokens").status_code == 401


def test_a_revoked_token_stops_working_at_once_and_its_studies_stay(client: TestClient) -> None:
    carol = user(client, "carol")
    assert client.post(STUDIES, json=spec("carols"), headers=carol).status_code == 201
    carol_id = next(t["id"] for t in client.get("/api/v1/tokens", headers=ADMIN).json()["data"]
                    if t["owner"] == "carol")
    assert client.delete(f"/api/v1/tokens/{carol_id}", headers=carol).status_code == 403  # not an admin
    assert client.delete(f"/api/v1/tokens/{carol_id}", headers=ADMIN).status_code == 204
    assert client.get(STUDIES, headers=carol).status_code == 401
    r = client.delete(f"/api/v1/tokens/{carol_id}", headers=ADMIN)
    assert r.status_code == 404 and "no token with id" in r.json()["detail"][0]["msg"]
    studies = client.get(STUDIES, headers=ADMIN).json()
    assert [s["name"] for s in studies["data"]] == ["carols"]  # the owner's studies are not touched


def test_the_last_admin_token_cannot_be_revoked(client: TestClient) -> None:
    [admin] = client.get("/api/v1/tokens", headers=ADMIN).json()["data"]
    r = client.delete(f"/api/v1/tokens/{admin['id']}", headers=ADMIN)
    assert r.status_code == 409 and "last admin token" in r.json()["detail"][0]["msg"]
    assert client.get(STUDIES, headers=ADMIN).status_code == 200
    ops = user(client, "ops", admin=True)
    assert client.delete(f"/api/v1/tokens/{admin['id']}", headers=ops).status_code == 204
    assert client.get(STUDIES, headers=ADMIN).status_code == 401
    assert client.delete("/api/v1/tokens/0", headers=ops).status_code == 422
