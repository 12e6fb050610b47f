"""``/api/v1/tokens``: admins create tokens; a token works at once and is shown only once."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from storage import Store
from tests.api.factories import ADMIN, STUDIES, user


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
