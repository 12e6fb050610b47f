"""``/api/v1/studies/{id}/trials``: pages of trials and one trial with its curves."""

from __future__ import annotations

from fastapi.testclient import TestClient
from pytest import approx

from storage import Store
from tests.api.factories import ADMIN, STUDIES, create_study, finish_trials


def test_trials_are_paged_with_lambda_state_value_sanity_worker_and_timings(client: TestClient, store: Store) -> None:
    sid = create_study(client)["id"]
    finish_trials(store, sid, [0.6, None, 0.7], worker="gpu-0")
    page = client.get(f"{STUDIES}/{sid}/trials", params={"limit": 2}, headers=ADMIN).json()
    assert page["count"] == 3 and [t["number"] for t in page["data"]] == [0, 1]
    first, second = page["data"]
    assert first["state"] == "complete" and first["value"] == 0.6
    assert first["lambdas"] == {"helpful": 0.0, "harmful": 0.0}
    assert first["attempt"] == 1 and first["worker"] == "gpu-0" and first["sanity"]["passed"] is True
    assert first["seconds"] is not None and first["seconds"] >= 0 and first["started_at"] <= first["finished_at"]
    assert second["state"] == "failed_sanity" and second["sanity"] == {
        "passed": False, "reason": "nan loss", "attempt": 1, "figures": {"loss_drop": 0.8}}
    failed = client.get(f"{STUDIES}/{sid}/trials", params={"state": ["failed_sanity", "failed"]}, headers=ADMIN)
    assert failed.json()["count"] == 1 and failed.json()["data"][0]["number"] == 1


def test_a_trial_has_its_per_epoch_per_task_curves(client: TestClient, store: Store) -> None:
    sid = create_study(client)["id"]
    finish_trials(store, sid, [0.8])
    trial = client.get(f"{STUDIES}/{sid}/trials/0", headers=ADMIN).json()
    assert trial["result"] == {"best_epoch": 2} and len(trial["epochs"]) == 3
    assert trial["curves"]["train_loss"] == {"main": approx([1.0, 0.9, 0.8]), "helpful": [0.5, 0.5, 0.5]}
    assert trial["curves"]["val_loss"]["main"] == approx([1.1, 1.0, 0.9])
    assert trial["series"]["val_accuracy"] == approx([0.78, 0.79, 0.8])


def test_a_queued_trial_has_no_curves_yet_and_an_unknown_number_is_404(client: TestClient) -> None:
    sid = create_study(client)["id"]
    trial = client.get(f"{STUDIES}/{sid}/trials/1", headers=ADMIN).json()
    assert trial["state"] == "queued" and trial["epochs"] == [] and trial["curves"] == {} and trial["sanity"] is None
    r = client.get(f"{STUDIES}/{sid}/trials/7", headers=ADMIN)
    assert r.status_code == 404 and r.json()["detail"][0]["loc"] == ["path", "number"]
