"""``POST /api/v1/studies`` with references to saved models (a trunk to start from, a kd teacher): a reference the
store cannot serve is a 422 naming the field and the fix, and nothing is stored."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from storage import Store
from tests.api.factories import ADMIN, STUDIES, user
from tuner.engine.prepared import prepare
from tuner.engine.transfer import save_trial_model
from tuner.spec import parse_spec

DIGITS: dict[str, Any] = {"name": "digits", "params": {"n_train": 100, "n_val": 100}}


def digits_spec(name: str, **changes: Any) -> dict[str, Any]:
    return {"name": name, "workload": DIGITS, "aux_tasks": [{"name": "loop", "loss": "bce"}],
            "search": {"algorithm": "random", "n_trials": 4}, "training": {"epochs": 2}, **changes}


@pytest.fixture
def teacher(client: TestClient, store: Store) -> int:
    """A digits study whose trial 0 has a saved (freshly initialised) model and trial 1 none."""
    r = client.post(STUDIES, json=digits_spec("teacher", artifacts={"save": "all"}), headers=ADMIN)
    assert r.status_code == 201, r.text
    prep = prepare(parse_spec(digits_spec("teacher")), "cpu")
    save_trial_model(store, r.json()["id"], 0, prep, prep.new_model(0))
    return int(r.json()["id"])


def refused(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post(STUDIES, json=body, headers=ADMIN)
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    return error  # type: ignore[no-any-return]


def kd(teacher: str) -> list[dict[str, Any]]:
    return [{"name": "distil", "loss": "kd", "teacher": teacher, "temperature": 3.0}]


def test_bad_references_are_refused_with_the_field_and_the_fix(client: TestClient, teacher: int) -> None:
    error = refused(client, digits_spec("s1", aux_tasks=kd("ghost/0")))
    assert error["loc"] == ["body", "aux_tasks", 0, "teacher"] and "no study named 'ghost'" in error["msg"]
    error = refused(client, digits_spec("s2", aux_tasks=kd("teacher/9")))
    assert "has no trial 9" in error["msg"]
    error = refused(client, digits_spec("s3", aux_tasks=kd("teacher/1")))
    assert "trial 1 has no saved model" in error["msg"] and "artifacts.save: all" in error["msg"]
    synthetic = {"name": "synthetic", "params": {"n_train": 64}}
    error = refused(client, digits_spec("s4", workload=synthetic, aux_tasks=[{"name": "helpful", "loss": "bce"}],
                                        trunk={"from_trial": "teacher/0"}))
    assert error["loc"] == ["body", "trunk", "from_trial"]
    assert "shape (1, 8, 8)" in error["msg"] and "(20,)" in error["msg"]
    error = refused(client, digits_spec("s5", trunk={"from_trial": "teacher/0", "mode": ["freeze", "finetune"]},
                                        search={"algorithm": "cmaes", "n_trials": 4}))
    assert error["loc"] == ["body", "trunk", "mode"] and "tpe" in error["msg"]
    assert [s["name"] for s in client.get(STUDIES, headers=ADMIN).json()["data"]] == ["teacher"]  # none stored


def test_good_references_are_stored_with_a_searched_trunk_mode(client: TestClient, store: Store, teacher: int) -> None:
    body = digits_spec("student", trunk={"from_trial": "teacher/0", "mode": ["finetune", "freeze"]},
                       aux_tasks=[{"name": "loop", "loss": "bce"}, *kd("teacher/0")])
    r = client.post(STUDIES, json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    controls = [t.params for t in store.trials(r.json()["id"])]
    assert controls == [{"loop": 0.0, "distil": 0.0, "trunk_mode": "finetune"},
                        {"loop": 1.0, "distil": 1.0, "trunk_mode": "finetune"}]


def test_another_owners_saved_models_are_refused_as_if_absent(client: TestClient, teacher: int) -> None:
    """A non-admin may not start from, or distil from, another owner's trial; the refusal reads exactly as for a
    study that does not exist, so it tells nothing of which of another owner's studies (or trials) exist."""
    bob = user(client, "bob")

    def refused_for_bob(body: dict[str, Any]) -> dict[str, Any]:
        r = client.post(STUDIES, json=body, headers=bob)
        assert r.status_code == 422, r.text
        [error] = r.json()["detail"]
        return error  # type: ignore[no-any-return]

    absent = refused_for_bob(digits_spec("b0", aux_tasks=kd("ghost/0")))["msg"]
    assert "no study named 'ghost'" in absent
    for ref in ("teacher/0", "teacher/9"):
        error = refused_for_bob(digits_spec("b1", aux_tasks=kd(ref)))
        assert error["loc"] == ["body", "aux_tasks", 0, "teacher"]
        assert error["msg"] == absent.replace("'ghost'", "'teacher'")
        error = refused_for_bob(digits_spec("b2", trunk={"from_trial": ref}))
        assert error["loc"] == ["body", "trunk", "from_trial"]
        assert error["msg"] == absent.replace("'ghost'", "'teacher'")
    assert client.get(STUDIES, headers=bob).json()["count"] == 0  # nothing was stored
