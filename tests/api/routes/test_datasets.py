"""``/api/v1/datasets``: checked uploads, and specs that refer to them as ``dataset:<id>``."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from api.config import Settings
from tests.api.factories import (
    ADMIN,
    DATASETS,
    STUDIES,
    attributes_bytes,
    csv_bytes,
    parquet_bytes,
    table_spec,
    upload,
    user,
)


def test_a_csv_upload_is_checked_stored_and_readable(client: TestClient, settings: Settings) -> None:
    content = csv_bytes()
    r = upload(client, content)
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["reference"] == f"dataset:{ds['id']}" and ds["format"] == "csv" and ds["filename"] == "dogs.csv"
    assert ds["rows"] == 30 and ds["columns"] == ["weight", "large", "breed"] and ds["size_bytes"] == len(content)
    assert (settings.data_dir / f"{ds['sha256']}.csv").read_bytes() == content  # the API's cache of the store's copy
    assert client.get(f"{DATASETS}/{ds['id']}", headers=ADMIN).json() == ds


def test_a_parquet_upload_is_accepted(client: TestClient) -> None:
    r = upload(client, parquet_bytes(), filename="dogs.parquet")
    assert r.status_code == 201, r.text
    assert r.json()["format"] == "parquet" and r.json()["rows"] == 30


def test_a_spec_refers_to_uploads_by_id_and_is_checked_against_them(client: TestClient, settings: Settings) -> None:
    data = upload(client, csv_bytes()).json()
    attrs = upload(client, attributes_bytes(), filename="attrs.csv").json()
    r = client.post(STUDIES, json=table_spec("dogs", data["reference"], attrs["reference"]), headers=ADMIN)
    assert r.status_code == 201, r.text
    stored = client.get(f"{STUDIES}/{r.json()['id']}", headers=ADMIN).json()["spec"]["workload"]["params"]
    assert stored["data"] == data["reference"]  # the reference is stored: each worker fetches the data set itself
    bad_task = {**table_spec("dogs2", data["reference"]), "aux_tasks": [{"name": "tail", "loss": "bce"}]}
    r = client.post(STUDIES, json=bad_task, headers=ADMIN)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "aux_tasks", 0, "name"]
    assert "available: ['large', 'weight']" in r.json()["detail"][0]["msg"]


def test_specs_may_not_name_files_on_the_server(client: TestClient) -> None:
    r = client.post(STUDIES, json=table_spec("etc", "/etc/passwd"), headers=ADMIN)
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "workload", "params", "data"] and "dataset:<id>" in error["msg"]


def test_an_unknown_or_malformed_dataset_reference_is_a_422(client: TestClient) -> None:
    for ref in ("dataset:" + "0" * 32, "dataset:../../etc/passwd"):
        r = client.post(STUDIES, json=table_spec("x", ref), headers=ADMIN)
        assert r.status_code == 422, ref
        assert r.json()["detail"][0]["loc"] == ["body", "workload", "params", "data"]


def test_another_owners_dataset_is_forbidden(client: TestClient) -> None:
    alice, bob = user(client, "alice"), user(client, "bob")
    ds = upload(client, csv_bytes(), headers=alice).json()
    assert client.get(f"{DATASETS}/{ds['id']}", headers=bob).status_code == 403
    r = client.post(STUDIES, json=table_spec("steal", ds["reference"]), headers=bob)
    assert r.status_code == 403 and r.json()["detail"][0]["loc"] == ["body", "workload", "params", "data"]
    assert client.get(f"{DATASETS}/{ds['id']}", headers=ADMIN).status_code == 200


def test_refused_uploads_leave_no_file_behind(client: TestClient, settings: Settings) -> None:
    bad = [upload(client, csv_bytes(extra={"color": ["red"] * 30})),
           upload(client, b"\x00\x01garbage", filename="x.parquet"),
           upload(client, csv_bytes(), filename="x.xlsx"),
           upload(client, b"a" * 100_000)]
    assert [r.status_code for r in bad] == [422, 422, 422, 413]
    assert list(settings.data_dir.iterdir()) == []


def test_a_chunked_upload_over_the_limit_is_stopped_while_it_streams(client: TestClient) -> None:
    sent = []

    def body():  # type: ignore[no-untyped-def]  # no Content-Length: the server must count
        for _ in range(100):
            sent.append(1)
            yield b"x" * 4096

    r = client.post(DATASETS, content=body(), headers={**ADMIN, "Content-Type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413 and r.json()["detail"][0]["loc"] == ["body"]


def test_an_unlabelled_target_domain_is_uploaded_and_used_as_target_data(client: TestClient) -> None:
    target = "weight,large\n" + "".join(f"{30 + i},{(i % 3) / 2}\n" for i in range(20))
    refused = client.post(DATASETS, files={"file": ("target.csv", target.encode())}, data={"label": "breed"},
                          headers=ADMIN)
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "label"]
    assert "'unlabelled' to true" in refused.json()["detail"][0]["msg"]
    r = client.post(DATASETS, files={"file": ("target.csv", target.encode())},
                    data={"label": "breed", "unlabelled": "true"}, headers=ADMIN)
    assert r.status_code == 201, r.text
    assert r.json()["columns"] == ["weight", "large"]

    data = upload(client, csv_bytes()).json()["reference"]
    doc = table_spec("adapt", data)
    doc["workload"]["params"]["target_data"] = r.json()["reference"]
    doc["aux_tasks"] = [{"name": "domain", "loss": "mmd"}]
    created = client.post(STUDIES, json=doc, headers=ADMIN)
    assert created.status_code == 201, created.text
    on_target = {**doc, "name": "adapt-2", "objective": {"metric": "target_val_accuracy"}}
    r = client.post(STUDIES, json=on_target, headers=ADMIN)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "objective"]
    assert "need target-domain labels" in r.json()["detail"][0]["msg"]


def test_an_upload_an_earlier_version_kept_on_disk_is_imported_into_the_store(tmp_path: Path) -> None:
    from api.main import create_app
    from tests.api.conftest import make_settings

    settings = make_settings(tmp_path)
    settings.data_dir.mkdir()
    legacy_id = "e" * 32
    (settings.data_dir / f"{legacy_id}.csv").write_bytes(csv_bytes())
    (settings.data_dir / f"{legacy_id}.json").write_text(json.dumps({
        "id": legacy_id, "reference": f"dataset:{legacy_id}", "filename": "old.csv", "format": "csv",
        "size_bytes": len(csv_bytes()), "sha256": "x", "rows": 30, "columns": ["weight", "large", "breed"],
        "label": "breed", "owner": "admin", "created_at": "2026-11-01T00:00:00Z"}))
    with TestClient(create_app(settings)) as client:
        shown = client.get(f"{DATASETS}/{legacy_id}", headers=ADMIN).json()
        assert shown["filename"] == "old.csv" and shown["rows"] == 30 and shown["size_bytes"] == len(csv_bytes())
        r = client.post(STUDIES, json=table_spec("old-data", f"dataset:{legacy_id}"), headers=ADMIN)
        assert r.status_code == 201, r.text
    assert (settings.data_dir / f"{legacy_id}.csv").exists()  # studies of that version name it by its path


def test_delete_refuses_while_a_study_uses_it_then_frees_the_bytes(client: TestClient, settings: Settings) -> None:
    alice, bob = user(client, "alice"), user(client, "bob")
    content = csv_bytes()
    ds = upload(client, content, headers=alice).json()
    twin = upload(client, content, filename="again.csv", headers=alice).json()  # the same bytes: one blob
    cached = settings.data_dir / f"{ds['sha256']}.csv"
    r = client.post(STUDIES, json=table_spec("alices", ds["reference"]), headers=alice)
    assert r.status_code == 201, r.text
    alices = r.json()["id"]
    r = client.post(STUDIES, json=table_spec("admins", ds["reference"]), headers=ADMIN)
    assert r.status_code == 201, r.text
    admins = r.json()["id"]

    assert client.delete(f"{DATASETS}/{ds['id']}", headers=bob).status_code == 403  # not bob's
    r = client.delete(f"{DATASETS}/{ds['id']}", headers=alice)
    assert r.status_code == 409, r.text
    [error] = r.json()["detail"]
    assert error["loc"] == ["path", "dataset_id"] and "your study alices" in error["msg"]
    assert "1 study of other owners" in error["msg"] and "admins" not in error["msg"]  # names only hers
    assert client.get(f"{DATASETS}/{ds['id']}", headers=alice).status_code == 200  # nothing deleted

    assert client.delete(f"{DATASETS}/{twin['id']}", headers=alice).status_code == 204
    assert client.get(f"{DATASETS}/{twin['id']}", headers=alice).status_code == 404
    assert cached.exists()  # the bytes are still the other data set's

    for study, headers in ((alices, alice), (admins, ADMIN)):
        assert client.post(f"{STUDIES}/{study}/cancel", headers=headers).status_code == 200
        assert client.delete(f"{STUDIES}/{study}", headers=headers).status_code == 204
    assert client.delete(f"{DATASETS}/{ds['id']}", headers=alice).status_code == 204
    assert not cached.exists()  # the API's copy went with the store's bytes
    r = client.delete(f"{DATASETS}/{ds['id']}", headers=alice)
    assert r.status_code == 404 and r.json()["detail"][0]["loc"] == ["path", "dataset_id"]
    r = client.post(STUDIES, json=table_spec("late", ds["reference"]), headers=alice)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "workload", "params", "data"]
    assert client.delete(f"{DATASETS}/not-an-id", headers=alice).status_code == 422
