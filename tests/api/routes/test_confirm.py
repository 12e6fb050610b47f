"""``POST /studies/{id}/confirm``, ``GET /studies/{id}/confirmation``, ``GET /studies/{id}/affinity`` and the
confirmation in ``/best``: through the app (TestClient + a worker in this process) and under a real
``auxtune serve`` (uvicorn and its embedded worker process), where a queued confirmation actually runs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.client import ApiError, AuxtuneClient
from storage import Store
from tests.api.factories import ADMIN, STUDIES, create_study, user
from tests.e2e.test_service import free_port, wait_for
from tuner.analysis.sequential import look_alphas
from tuner.execution.worker import Worker, WorkerConfig

ROOT = Path(__file__).resolve().parents[3]
SMALL = {"search": {"algorithm": "random", "n_trials": 3, "seed": 0}, "training": {"epochs": 2},
         "affinity": {"every": 2}}


def run_workers(store: Store, name: str) -> None:
    Worker(store, config=WorkerConfig(poll_s=0.02)).run([name])


def test_confirm_a_study_through_the_api(client: TestClient, store: Store) -> None:
    sid = create_study(client, "api-confirm", **SMALL)["id"]
    early = client.post(f"{STUDIES}/{sid}/confirm", json={"seeds": 2}, headers=ADMIN)
    assert early.status_code == 409 and early.json()["detail"][0]["type"] == "search_running"
    none_yet = client.get(f"{STUDIES}/{sid}/confirmation", headers=ADMIN)
    assert none_yet.status_code == 409 and "POST /api/v1/studies" in none_yet.json()["detail"][0]["msg"]
    assert client.get(f"{STUDIES}/{sid}/affinity", headers=ADMIN).status_code == 409
    run_workers(store, "api-confirm")  # the search

    for body, field in (({"seeds": 1}, "seeds"), ({"seeds": "many"}, "seeds"), ({"ablate": "maybe"}, "ablate"),
                        ({"max_seeds": 10**6}, "max_seeds"), ({"rounds": 2}, "rounds")):
        bad = client.post(f"{STUDIES}/{sid}/confirm", json=body, headers=ADMIN)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:2] == ["body", field], (body, bad.text)
    queued = client.post(f"{STUDIES}/{sid}/confirm", json={"seeds": "auto", "max_seeds": 6, "ablate": True,
                                                           "resample_splits": False}, headers=ADMIN)
    assert queued.status_code == 202, queued.text
    report = queued.json()
    arms = [a["arm"] for a in report["arms"]]
    assert report["state"] == "queued" and report["verdict"] is None and report["method"] == "paired"
    assert arms[:2] == ["baseline", "best"] and set(arms[2:]) <= {"ablate_helpful", "ablate_harmful"}
    assert report["counts"]["queued"] == 4 * len(arms)  # the first round: 4 seeds
    assert report["arms"][0]["params"] == {"helpful": 0.0, "harmful": 0.0, "neutral": 0.25}  # fixed λ stays
    assert report["sequential"]["looks"] == [] and report["sequential"]["next_seeds"] == 4

    run_workers(store, "api-confirm")  # no trial left: the worker takes the runs, round after round
    done = client.get(f"{STUDIES}/{sid}/confirmation", headers=ADMIN).json()
    seq = done["sequential"]
    assert done["state"] == "complete" and seq["stopped"] and seq["alphas"] == pytest.approx(look_alphas([4, 6]))
    assert (seq["reason"], seq["seeds"]) in (("decided", 4), ("max_seeds", 6)) and done["seeds"] == seq["seeds"]
    assert done["counts"]["complete"] == seq["seeds"] * len(arms) and seq["why"].startswith("stopped at")
    headline = next(c for c in done["comparisons"] if c["arm"] == "best" and c["against"] == "baseline")
    assert done["verdict"] == headline["test"]["verdict"] in ("better", "no detectable difference", "worse")
    assert headline["method"] == headline["test"]["method"] == "paired" and headline["test"]["wilcoxon_p"] is not None
    tasks = {row["task"]: row for row in done["ablation"]}
    assert set(tasks) == {"helpful", "harmful"}
    assert all(r["verdict"] in ("helps", "no detectable effect", "hurts") or r["note"] for r in tasks.values())
    assert done["error_analysis"]["runs"] == {"baseline": seq["seeds"], "best": seq["seeds"]}

    best = client.get(f"{STUDIES}/{sid}/best", headers=ADMIN).json()
    assert best["confirmation"]["verdict"] == done["verdict"] and best["confirmation"]["method"] == "paired"
    assert best["confirmation"]["difference"] == pytest.approx(headline["test"]["difference"])
    assert [r["task"] for r in best["confirmation"]["ablation"]] == [r["task"] for r in done["ablation"]]
    assert best["search_estimate"] == {"metric": "val_accuracy", "value": best["value"], "trial": best["trial"],
                                       "seeds": 1}
    confirmed = best["confirmed_estimate"]  # the winner's curse in the open: beside the search's own value
    best_arm = next(a for a in done["arms"] if a["arm"] == "best")
    assert confirmed["mean"] == pytest.approx(best_arm["val"]["mean"]) and confirmed["n"] == seq["seeds"]
    assert confirmed["ci_low"] <= confirmed["mean"] <= confirmed["ci_high"]
    assert confirmed["test_mean"] == pytest.approx(best_arm["test"]["mean"])
    affinity = client.get(f"{STUDIES}/{sid}/affinity", headers=ADMIN).json()
    assert set(affinity["ranking"]) == {"helpful", "harmful", "neutral"} and len(affinity["trials"]) == 3
    assert affinity["figure"]["data"][0]["type"] == "heatmap"


def test_confirmation_routes_check_the_caller(client: TestClient, store: Store) -> None:
    sid = create_study(client, "owned", **SMALL)["id"]
    bob = user(client, "bob")
    assert client.post(f"{STUDIES}/{sid}/confirm", headers=bob).status_code == 403
    assert client.get(f"{STUDIES}/{sid}/confirmation", headers=bob).status_code == 403
    assert client.get(f"{STUDIES}/{sid}/affinity").status_code == 401
    assert client.post(f"{STUDIES}/{sid + 100}/confirm", headers=ADMIN).status_code == 404


# -- under a real `auxtune serve` ------------------------------------------------------------------------------
def answered(check: Callable[[], bool]) -> Callable[[], bool]:
    """``check``, False while the service refuses (409: nothing yet) or is not up yet."""

    def attempt() -> bool:
        try:
            return check()
        except ApiError:
            return False

    return attempt


@pytest.fixture
def service(tmp_path: Path) -> Iterator[AuxtuneClient]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tuner.cli", "serve", "--db", f"sqlite:///{tmp_path / 's.db'}",
                             "--port", str(port), "--no-auth", "--workers", "1"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = AuxtuneClient(f"http://127.0.0.1:{port}")
    try:
        wait_for(answered(lambda: bool(client.health())), 60, "the API")
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(60)


def spec(name: str, **extra: object) -> dict:
    return {"name": name, "workload": {"name": "synthetic", "params": {"n_train": 120, "n_test": 300}},
            "aux_tasks": [{"name": "helpful", "loss": "bce"}], "search": {"algorithm": "random", "n_trials": 3},
            "training": {"epochs": 3}, **extra}


def test_the_service_runs_queued_and_automatic_confirmations(service: AuxtuneClient) -> None:
    auto = service.submit(spec("auto", confirm={"seeds": 2}, arms=["dwa"]))["id"]
    asked = service.submit(spec("asked"))["id"]
    wait_for(answered(lambda: service.study(asked)["status"] == "done"), 120, "the search of 'asked'")
    with pytest.raises(ApiError) as none_yet:
        service.confirmation(asked)
    assert none_yet.value.status == 409
    queued = service.confirm(asked, seeds=3)
    assert queued["state"] in ("queued", "running") and queued["counts"]["queued"] + queued["counts"]["running"] == 6
    wait_for(answered(lambda: service.confirmation(asked)["state"] == "complete"), 120, "the requested confirmation")
    wait_for(answered(lambda: service.confirmation(auto)["state"] == "complete"), 120, "the automatic confirmation")
    automatic = service.confirmation(auto)
    assert [a["arm"] for a in automatic["arms"]] == ["baseline", "best", "dwa"] and automatic["seeds"] == 2
    assert service.best(asked)["confirmation"]["seeds"] == 3
    assert service.affinity(asked)["ranking"] == ["helpful"]
