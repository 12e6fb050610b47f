"""``/api/v1/workloads``: the registry, with the aux tasks each workload offers."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_workloads_list_builtins_with_tasks_and_params_without_a_token(client: TestClient) -> None:
    r = client.get("/api/v1/workloads")
    assert r.status_code == 200
    by_name = {w["name"]: w for w in r.json()["data"]}
    assert {"digits", "synthetic", "table"} <= set(by_name)
    assert by_name["synthetic"]["tasks"]["helpful"]["losses"] == ["bce", "mse"]
    assert by_name["table"]["tasks"] == {} and by_name["table"]["path_params"] == ["data", "attributes", "target_data"]
    assert "label" in by_name["table"]["params"]["properties"]
