"""``GET /studies/{id}/pareto`` and ``/best`` on a multi-objective study: the front, checked by hand."""

from __future__ import annotations

from fastapi.testclient import TestClient

from storage import Store
from tests.api.factories import ADMIN, STUDIES, create_study, spec, suggest_all

OBJECTIVES = [{"metric": "val_accuracy"}, {"metric": "val_loss:harmful"}]
SEARCH = {"algorithm": "nsga2", "n_trials": 8, "seed": 0}


def finish(store: Store, study_id: int, vectors: list[list[float]]) -> list[int]:
    numbers = []
    for values in vectors:
        claim = store.claim_trial(study_id, "w1", suggest_all)
        assert claim is not None
        store.finish_trial(claim, "complete", values, result={})
        numbers.append(claim.number)
    return numbers


def test_pareto_and_best_answer_with_the_front(client: TestClient, store: Store) -> None:
    study = create_study(client, "pareto", objective=OBJECTIVES, search=SEARCH)
    sid = study["id"]
    r = client.get(f"{STUDIES}/{sid}/best", headers=ADMIN)
    assert r.status_code == 409, r.text  # nothing complete yet

    # (accuracy ↑, harmful loss ↓): trials 0, 1 and 3 trade off; 2 is dominated by 1, 4 by 3 (and ties 3 on one).
    numbers = finish(store, sid, [[0.9, 0.5], [0.8, 0.2], [0.7, 0.3], [0.95, 0.9], [0.95, 0.95]])
    r = client.get(f"{STUDIES}/{sid}/pareto", headers=ADMIN)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["metrics"] == ["val_accuracy", "val_loss:harmful"]
    assert body["directions"] == ["maximize", "minimize"]
    assert [t["trial"] for t in body["front"]] == [numbers[0], numbers[1], numbers[3]]
    assert body["count"] == 3 and body["complete"] == 5
    assert body["front"][1]["values"] == {"val_accuracy": 0.8, "val_loss:harmful": 0.2}
    assert set(body["front"][0]["lambdas"]) == {"helpful", "harmful", "neutral"}  # fixed λ included
    assert body["best_by_objective"] == {"val_accuracy": numbers[3], "val_loss:harmful": numbers[1]}
    assert "Pareto-optimal" in body["how_to_pick"]

    best = client.get(f"{STUDIES}/{sid}/best", headers=ADMIN)
    assert best.status_code == 200 and best.json() == body


def test_single_objective_pareto_is_the_best_and_best_is_unchanged(client: TestClient, store: Store) -> None:
    sid = create_study(client, "single")["id"]
    numbers = finish(store, sid, [[0.7], [0.9], [0.8]])
    body = client.get(f"{STUDIES}/{sid}/pareto", headers=ADMIN).json()
    assert [t["trial"] for t in body["front"]] == [numbers[1]]
    best = client.get(f"{STUDIES}/{sid}/best", headers=ADMIN).json()
    assert best["trial"] == numbers[1] and best["value"] == 0.9 and "front" not in best


def test_multi_objective_spec_with_a_single_objective_sampler_is_refused(client: TestClient) -> None:
    doc = spec("bad", objective=OBJECTIVES, search={"algorithm": "cmaes", "n_trials": 8})
    r = client.post(STUDIES, json=doc, headers=ADMIN)
    assert r.status_code == 422, r.text
    assert any(d["loc"][-2:] == ["search", "algorithm"] for d in r.json()["detail"]), r.text
