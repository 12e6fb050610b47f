"""``/api/v1/studies``: submit, list, read, best, pause/resume/cancel, delete."""

from __future__ import annotations

from fastapi.testclient import TestClient

from storage import Store
from tests.api.factories import ADMIN, STUDIES, create_study, finish_trials, spec, user
from tests.api.routes.test_pareto import OBJECTIVES, SEARCH, finish


def test_post_creates_a_queued_study_with_its_controls(client: TestClient, store: Store) -> None:
    r = client.post(STUDIES, json=spec("first"), headers=ADMIN)
    assert r.status_code == 201
    body = r.json()
    assert body["status"] == "queued" and body["name"] == "first" and body["owner"] == "admin"
    assert body["workload"] == "synthetic" and body["metric"] == "val_accuracy" and body["direction"] == "maximize"
    assert body["n_trials"] == 6
    queued = store.trials(body["id"])
    assert [t.params for t in queued] == [{"helpful": 0.0, "harmful": 0.0}, {"helpful": 1.0, "harmful": 1.0}]


def test_a_taken_name_is_a_409_even_for_the_identical_spec(client: TestClient) -> None:
    first = create_study(client, "twice")
    for body in (spec("twice"), spec("twice", search={"algorithm": "tpe", "n_trials": 9})):
        r = client.post(STUDIES, json=body, headers=ADMIN)
        assert r.status_code == 409
        [error] = r.json()["detail"]
        assert error["loc"] == ["body", "name"]
        assert f"/api/v1/studies/{first['id']}" in error["msg"]
    assert client.get(STUDIES, headers=ADMIN).json()["count"] == 1


def test_another_owners_name_clash_does_not_reveal_the_id(client: TestClient) -> None:
    create_study(client, "shared", headers=user(client, "alice"))
    r = client.post(STUDIES, json=spec("shared"), headers=user(client, "bob"))
    assert r.status_code == 409
    assert "another owner" in r.json()["detail"][0]["msg"] and "/studies/" not in r.json()["detail"][0]["msg"]


def test_list_is_paged_newest_first_and_filters_by_status(client: TestClient) -> None:
    ids = [create_study(client, f"s{i}")["id"] for i in range(5)]
    client.post(f"{STUDIES}/{ids[1]}/pause", headers=ADMIN)
    page = client.get(STUDIES, params={"offset": 1, "limit": 2}, headers=ADMIN).json()
    assert page["count"] == 5 and [s["id"] for s in page["data"]] == [ids[3], ids[2]]
    paused = client.get(STUDIES, params={"status": "paused"}, headers=ADMIN).json()
    assert paused["count"] == 1 and paused["data"][0]["id"] == ids[1]


def test_owners_list_only_their_studies_and_admins_all(client: TestClient) -> None:
    alice, bob = user(client, "alice"), user(client, "bob")
    create_study(client, "a1", headers=alice)
    create_study(client, "b1", headers=bob)
    assert [s["name"] for s in client.get(STUDIES, headers=alice).json()["data"]] == ["a1"]
    assert client.get(STUDIES, headers=ADMIN).json()["count"] == 2


def test_get_shows_spec_counts_and_best_so_far(client: TestClient, store: Store) -> None:
    study = create_study(client)
    r = client.get(f"{STUDIES}/{study['id']}", headers=ADMIN).json()
    assert r["spec"]["search"]["n_trials"] == 6 and r["spec"]["training"]["lr"] == 0.001  # defaults filled in
    assert r["counts"]["queued"] == 2 and r["best"] is None
    finish_trials(store, study["id"], [0.6, 0.8])
    r = client.get(f"{STUDIES}/{study['id']}", headers=ADMIN).json()
    assert r["counts"]["complete"] == 2 and r["counts"]["queued"] == 0
    assert r["best"] == {"trial": 1, "value": 0.8, "lambdas": {"helpful": 1.0, "harmful": 1.0}}


def test_best_is_409_until_a_trial_completes_then_gives_every_lambda(client: TestClient, store: Store) -> None:
    study = create_study(client)
    url = f"{STUDIES}/{study['id']}/best"
    r = client.get(url, headers=ADMIN)
    assert r.status_code == 409 and "no completed trial yet" in r.json()["detail"][0]["msg"]
    finish_trials(store, study["id"], [None])  # a failed sanity gate gives no value
    assert client.get(url, headers=ADMIN).status_code == 409
    trials = finish_trials(store, study["id"], [0.7, 0.9, 0.8])
    best = client.get(url, headers=ADMIN).json()
    assert best == {"lambdas": {**trials[1]["params"], "neutral": 0.25}, "value": 0.9, "trial": trials[1]["number"],
                    "metric": "val_accuracy", "direction": "maximize"}


def test_pause_resume_cancel_follow_the_allowed_transitions(client: TestClient, store: Store) -> None:
    sid = create_study(client)["id"]

    def post(action: str) -> tuple[int, str]:
        r = client.post(f"{STUDIES}/{sid}/{action}", headers=ADMIN)
        return r.status_code, r.json()["status"] if r.status_code == 200 else r.json()["detail"][0]["msg"]

    assert post("resume") == (409, f"study {sid} is queued; only a paused study can be resumed")
    assert post("pause") == (200, "paused")
    assert store.claim_trial(sid, "w1", None) is None  # a paused study hands out nothing
    assert post("pause")[0] == 409
    assert post("resume") == (200, "queued")  # no trial ran yet: its sanity gate is still to come
    finish_trials(store, sid, [0.5])
    assert post("pause") == (200, "paused")
    assert post("resume") == (200, "running")
    assert post("cancel") == (200, "cancelled")
    for action in ("pause", "resume", "cancel"):
        assert post(action)[0] == 409
    assert store.claim_trial(sid, "w1", None) is None


def test_delete_needs_an_inactive_study_and_removes_everything(client: TestClient, store: Store) -> None:
    sid = create_study(client)["id"]
    finish_trials(store, sid, [0.5])
    r = client.delete(f"{STUDIES}/{sid}", headers=ADMIN)
    assert r.status_code == 409 and "cancel it first" in r.json()["detail"][0]["msg"]
    client.post(f"{STUDIES}/{sid}/cancel", headers=ADMIN)
    assert client.delete(f"{STUDIES}/{sid}", headers=ADMIN).status_code == 204
    assert client.get(f"{STUDIES}/{sid}", headers=ADMIN).status_code == 404
    assert client.get(STUDIES, headers=ADMIN).json()["count"] == 0
    create_study(client)  # the name is free again


def test_non_finite_numbers_are_refused(client: TestClient) -> None:
    body = b'{"name": "inf", "workload": {"name": "synthetic"}, "aux_tasks": [{"name": "helpful", "loss": "bce"}],' \
           b' "training": {"lr": Infinity}}'
    r = client.post(STUDIES, content=body, headers={**ADMIN, "Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "training", "lr"]


def test_a_broken_set_up_moves_the_study_to_failed_with_the_gates_reason(client: TestClient, store: Store) -> None:
    from tuner.execution.worker import Worker, WorkerConfig  # the engine: it runs the study-level gate before any trial

    broken = create_study(client, "broken", training={"epochs": 1, "lr": 1e6, "optimizer": "sgd"})
    healthy = create_study(client, "healthy", search={"algorithm": "random", "n_trials": 2},
                           training={"epochs": 1})
    Worker(store, config=WorkerConfig(lease_timeout_s=60, heartbeat_s=5)).run(["broken", "healthy"])
    body = client.get(f"{STUDIES}/{broken['id']}", headers=ADMIN).json()
    assert body["status"] == "failed"
    assert body["status_reason"].startswith("study-level sanity gate failed at λ=")
    assert "non-finite loss" in body["status_reason"] and "lower the learning rate" in body["status_reason"]
    assert body["counts"]["queued"] == 2 and body["counts"]["complete"] == 0  # no trial was spent on it
    best = client.get(f"{STUDIES}/{broken['id']}/best", headers=ADMIN)
    assert best.status_code == 409 and "study-level sanity gate failed" in best.json()["detail"][0]["msg"]
    listed = client.get(STUDIES, params={"status": "failed"}, headers=ADMIN).json()
    assert [s["name"] for s in listed["data"]] == ["broken"] and listed["data"][0]["status_reason"]
    ok = client.get(f"{STUDIES}/{healthy['id']}", headers=ADMIN).json()
    assert ok["status"] == "done" and ok["status_reason"] == "" and ok["counts"]["complete"] == 2


def test_a_multi_objective_study_says_how_many_trials_its_front_holds(client: TestClient, store: Store) -> None:
    created = create_study(client, "two", objective=OBJECTIVES, search=SEARCH)
    sid = created["id"]
    so_far = {"metrics": ["val_accuracy", "val_loss:harmful"], "directions": ["maximize", "minimize"]}
    assert created["pareto"] == {**so_far, "count": 0, "complete": 0}
    assert client.get(f"{STUDIES}/{sid}", headers=ADMIN).json()["pareto"]["count"] == 0
    # (accuracy ↑, harmful loss ↓): 0, 1 and 3 trade off; 2 is dominated by 1, 4 by 3.
    finish(store, sid, [[0.9, 0.5], [0.8, 0.2], [0.7, 0.3], [0.95, 0.9], [0.95, 0.95]])
    front = len(store.pareto_front(sid))
    assert front == 3
    detail = client.get(f"{STUDIES}/{sid}", headers=ADMIN).json()
    assert detail["pareto"] == {**so_far, "count": front, "complete": 5}
    assert detail["metric"] == "val_accuracy"  # the primary objective, and its best labelled as its alone
    assert detail["best"]["value"] == 0.95 and detail["best"]["primary_objective"] == "val_accuracy"

    single = create_study(client, "one")
    finish_trials(store, single["id"], [0.6])
    assert "pareto" not in single
    listed = {s["name"]: s for s in client.get(STUDIES, headers=ADMIN).json()["data"]}
    assert listed["two"]["pareto"] == detail["pareto"] and "pareto" not in listed["one"]
    one = client.get(f"{STUDIES}/{single['id']}", headers=ADMIN).json()
    assert "pareto" not in one and "primary_objective" not in one["best"]
    assert client.post(f"{STUDIES}/{sid}/pause", headers=ADMIN).json()["pareto"] == detail["pareto"]
    assert "pareto" not in client.post(f"{STUDIES}/{single['id']}/pause", headers=ADMIN).json()
