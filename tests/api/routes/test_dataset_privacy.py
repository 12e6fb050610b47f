"""What a refusal tells a client about the server's files: uploads and ``dataset:<id>`` references are named as
the client named them, never by where the server keeps them; and files on the API host are an admin's only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
from tests.api.conftest import make_settings
from tests.api.factories import ADMIN, STUDIES, attributes_bytes, csv_bytes, table_spec, upload, user


def leaks(msg: str, settings: Settings) -> bool:
    return str(settings.data_dir.absolute()) in msg or str(settings.data_dir.resolve()) in msg or ".incoming" in msg


def test_an_unreadable_upload_is_named_by_its_filename(client: TestClient, settings: Settings) -> None:
    r = upload(client, b"\x00\x01garbage", filename="x.parquet")
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "file"] and "'x.parquet'" in error["msg"]
    assert not leaks(error["msg"], settings), error["msg"]


def test_spec_errors_name_uploads_by_their_reference(client: TestClient, settings: Settings) -> None:
    data = upload(client, csv_bytes()).json()["reference"]
    attrs = upload(client, attributes_bytes(), filename="attrs.csv").json()["reference"]
    no_label = table_spec("dogs", data)
    no_label["workload"]["params"]["label"] = "colour"
    no_feature = table_spec("dogs", data, attrs)
    no_feature["workload"]["params"]["features"] = ["tail"]
    for doc, field in ((no_label, "label"), (no_feature, "features")):
        r = client.post(STUDIES, json=doc, headers=ADMIN)
        assert r.status_code == 422, r.text
        [error] = r.json()["detail"]
        assert error["loc"] == ["body", "workload", "params", field]
        assert data in error["msg"] and not leaks(error["msg"], settings), error["msg"]


@pytest.fixture
def paths_client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path, allow_server_paths=True))) as c:
        yield c


def test_server_paths_are_read_for_admin_tokens_only(paths_client: TestClient, tmp_path: Path) -> None:
    on_host = tmp_path / "dogs.csv"
    on_host.write_bytes(csv_bytes())
    alice = user(paths_client, "alice")
    r = paths_client.post(STUDIES, json=table_spec("alices", str(on_host)), headers=alice)
    assert r.status_code == 403, r.text
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "workload", "params", "data"]
    assert "admin" in error["msg"] and "dataset:<id>" in error["msg"]
    assert paths_client.get(STUDIES, headers=ADMIN).json()["count"] == 0
    assert paths_client.post(STUDIES, json=table_spec("admins", str(on_host)), headers=ADMIN).status_code == 201
