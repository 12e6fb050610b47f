"""The study page's trust panel (issue #7 on the dashboard): confirmation, task affinity and error analysis in the
JSON the page polls and in the report. Trials and confirmation runs are written through the store as workers
write them (claim → finish with a result document), with known figures, so nothing trains here."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from storage import Store
from tests.api.factories import ADMIN, STUDIES, create_study, suggest_all
from tuner.analysis.confirm import request_confirmation

DASH = "/api/v1/dashboard/studies"
CLASSES = ["cat", "dog", "fox"]
#: Test metric of each arm: best clearly above the baseline, the learned-weighting arm in between.
TEST_MEANS = {"baseline": 0.70, "best": 0.80, "dwa": 0.75,
              "ablate_helpful": 0.72, "ablate_harmful": 0.85}  # without helpful worse, without harmful better
#: TAG affinity to the main task measured by each trial: helpful helps, harmful hurts.
AFFINITY = {"helpful": 0.03, "harmful": -0.02}


def affinity_doc(rng: random.Random) -> dict[str, Any]:
    to_main = {task: z + rng.gauss(0, 0.002) for task, z in AFFINITY.items()}
    tasks = ["main", *AFFINITY]
    matrix = {src: {dst: (to_main[src] if dst == "main" and src != "main" else 0.01) for dst in tasks}
              for src in tasks}
    return {"tasks": tasks, "to_main": to_main, "matrix": matrix, "probes": 4}


def finish_searched_trials(store: Store, study_id: int, n: int = 4) -> None:
    """``n`` complete trials that measured affinity, as a worker leaves them; then the search is done."""
    rng = random.Random(0)
    for _ in range(n):
        claim = store.claim_trial(study_id, "w1", suggest_all)
        assert claim is not None
        # Both searched λ > 0 in every trial: the affinity of a task is averaged over the trials that trained it.
        params = {k: max(float(v), 0.1) for k, v in claim.params.items()}
        store.finish_trial(claim, "complete", 0.6 + rng.random() / 10,
                           result={"lambdas": {**params, "neutral": 0.25}, "affinity": affinity_doc(rng)})
    store.set_study_status(study_id, "done")


def confusion(arm: str) -> list[list[int]]:
    """The best λ set stops confusing foxes with dogs; the rest is the same."""
    fox_as_dog = 10 if arm == "baseline" else 2
    return [[18, 2, 0], [1, 19, 0], [0, fox_as_dog, 20 - fox_as_dog]]


def run_confirmation(store: Store, study_id: int, seeds: int = 4, ablate: bool = False) -> None:
    """Queue the confirmation and finish every run as a worker would, with known figures."""
    request_confirmation(store, store.get_study(study_id), seeds=seeds, ablate=ablate)
    rng = random.Random(1)
    while (claim := store.claim_run("w1")) is not None:
        test = TEST_MEANS[claim.arm] + rng.gauss(0, 0.01)
        result: dict[str, Any] = {"confusion": confusion(claim.arm), "class_names": CLASSES}
        if claim.kind == "weighting":
            result["weighting"] = {"effective_lambdas": {"helpful": 0.9, "harmful": 0.1}}
        store.finish_run(claim, "complete", val_value=test + 0.01, test_value=test, result=result)


@pytest.fixture
def confirmed(client: TestClient, store: Store) -> int:
    """A done study whose trials measured affinity and whose confirmation (baseline, best, DWA, ablations)
    finished."""
    sid = create_study(client, "trusted", arms=["dwa"])["id"]
    finish_searched_trials(store, sid)
    run_confirmation(store, sid, ablate=True)
    return int(sid)


def state(client: TestClient, sid: int, **params: str) -> dict[str, Any]:
    r = client.get(f"{DASH}/{sid}", params=params, headers=ADMIN)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_the_study_json_carries_the_confirmation_affinity_and_error_analysis(client: TestClient,
                                                                             confirmed: int) -> None:
    page = state(client, confirmed)
    trust = page["trust"]
    c = trust["confirmation"]
    assert trust["request"] is None and c["state"] == "complete" and c["seeds"] == 4
    assert c["verdict"] == "better" and c["verdict_line"].endswith(": better") and "paired t-test" in c["verdict_line"]
    assert [a["arm"] for a in c["arms"]] == ["baseline", "best", "ablate_harmful", "ablate_helpful", "dwa"]
    arms = {a["arm"]: a for a in c["arms"]}
    assert arms["best"]["test"]["mean"] == pytest.approx(0.80, abs=0.02) and arms["best"]["test"]["n"] == 4
    assert arms["dwa"]["kind"] == "weighting" and arms["dwa"]["effective_lambdas"] == {"helpful": 0.9,
                                                                                      "harmful": 0.1}
    headline = next(x for x in c["comparisons"] if x["arm"] == "best" and x["against"] == "baseline")["test"]
    assert headline["difference"] == pytest.approx(0.10, abs=0.03) and headline["ci_low"] > 0
    assert headline["p_value"] < 0.05
    assert {(x["arm"], x["against"]) for x in c["comparisons"]} == {
        ("best", "baseline"), ("dwa", "baseline"), ("dwa", "best"), ("best", "ablate_helpful"),
        ("best", "ablate_harmful")}
    assert {r["task"]: r["verdict"] for r in c["ablation"]} == {"helpful": "helps", "harmful": "hurts"}
    assert c["ablation_lines"][0].startswith("helpful: helps (") or c["ablation_lines"][1].startswith("helpful: helps")

    affinity = trust["affinity"]
    assert affinity["ranking"] == ["helpful", "harmful"] and affinity["drop_candidates"] == ["harmful"]
    advice = {r["task"]: (r["advice"], r["advice_from"]) for r in affinity["summary"]}  # the ablation decides
    assert advice == {"helpful": ("keep", "ablation"), "harmful": ("candidate to drop", "ablation")}
    assert affinity["trials"] == 4

    errors = c["error_analysis"]
    assert errors["runs"] == {"baseline": 4, "best": 4}
    top = errors["pairs"][0]
    assert (top["true"], top["predicted"]) == ("fox", "dog") and top["change"] == pytest.approx(-0.4)

    figures = page["figures"]
    bars = figures["confirmation"]["data"]
    arms = ["baseline", "best", "ablate_harmful", "ablate_helpful", "dwa"]
    assert [t["x"] for t in bars] == [arms] * 2 and bars[1]["name"] == "test_accuracy"
    assert figures["affinity"]["data"][0]["type"] == "heatmap" and figures["affinity"]["data"][0]["x"] == [
        "main", "helpful", "harmful"]
    assert figures["confusion"]["data"][0]["x"] == CLASSES
    assert {"confirmation", "affinity", "confusion"} <= set(page["figure_keys"])


def test_the_panel_agrees_with_the_confirmation_and_affinity_routes(client: TestClient, confirmed: int) -> None:
    trust = state(client, confirmed)["trust"]
    rest = client.get(f"{STUDIES}/{confirmed}/confirmation", headers=ADMIN).json()
    assert trust["confirmation"]["verdict"] == rest["verdict"]
    assert trust["confirmation"]["comparisons"] == rest["comparisons"]
    affinity = client.get(f"{STUDIES}/{confirmed}/affinity", headers=ADMIN).json()
    assert trust["affinity"]["summary"] == affinity["summary"]


def test_without_a_confirmation_the_page_says_how_to_ask_for_one(client: TestClient, store: Store) -> None:
    sid = create_study(client, "unconfirmed")["id"]
    running = state(client, sid)
    assert running["trust"]["confirmation"] is None and running["trust"]["affinity"] is None
    assert "once the search is done" in running["trust"]["request"]["text"]
    assert not {"confirmation", "affinity", "confusion"} & set(running["figures"])

    finish_searched_trials(store, sid)
    done = state(client, sid)["trust"]
    request = done["request"]
    assert request["cli"] == "auxtune confirm unconfirmed" and request["api"] == f"POST {STUDIES}/{sid}/confirm"
    assert request["cli"] in request["text"] and request["api"] in request["text"]
    assert "once the search" not in request["text"]
    # 4 trials: too few for the λ slice to agree, so the affinity alone advises nothing (an early, noisy signal)
    assert done["affinity"]["drop_candidates"] == [] and {r["advice"] for r in done["affinity"]["summary"]} == {
        "no advice"}


def test_a_poll_sees_confirmation_runs_arrive(client: TestClient, store: Store) -> None:
    sid = create_study(client, "polled")["id"]
    finish_searched_trials(store, sid)
    before = state(client, sid)
    assert before["trust"]["confirmation"] is None
    request_confirmation(store, store.get_study(sid), seeds=2)
    queued = state(client, sid, since=before["version"])
    assert queued["unchanged"] is False and queued["trust"]["confirmation"]["state"] == "queued"
    assert state(client, sid, since=queued["version"]) == {"version": queued["version"], "unchanged": True}
    claim = store.claim_run("w1")
    assert claim is not None
    claimed = state(client, sid, since=queued["version"])
    assert claimed["trust"]["confirmation"]["counts"]["running"] == 1
    assert store.heartbeat_run(claim)  # a heartbeat is not a change the page shows
    assert state(client, sid, since=claimed["version"])["unchanged"] is True
    store.finish_run(claim, "complete", 0.7, 0.7, {"confusion": confusion(claim.arm)})
    finished_one = state(client, sid, since=queued["version"])
    assert finished_one["unchanged"] is False
    assert finished_one["trust"]["confirmation"]["counts"]["complete"] == 1
    assert finished_one["figure_keys"]["confirmation"] != queued["figure_keys"]["confirmation"]


def _figures_of(html: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="figures">(.*?)</script>', html, re.S)
    assert found is not None
    return json.loads(found.group(1))  # type: ignore[no-any-return]


def test_the_report_holds_the_trust_panel(client: TestClient, confirmed: int, store: Store) -> None:
    html = client.get(f"{STUDIES}/{confirmed}/report.html", headers=ADMIN).text
    assert "Confirmation (complete): best λ vs baseline on test_accuracy" in html and ": better</p>" in html
    assert "<td>dwa</td><td>weighting</td>" in html and "candidate to drop" in html
    assert '<ul id="trust-ablation"><li>helpful: helps (' in html and "<li>harmful: hurts (" in html
    assert "<td>fox</td><td>dog</td>" in html and "-40.0 %" in html
    for figure in ("confirmation", "affinity", "confusion"):
        assert f'id="{figure}"' in html
    assert {"confirmation", "affinity", "confusion"} <= set(_figures_of(html))

    bare = create_study(client, "bare")["id"]
    plain = client.get(f"{STUDIES}/{bare}/report.html", headers=ADMIN).text
    assert "auxtune confirm bare" in plain and "No trial has measured task affinity." in plain
    assert not {"confirmation", "affinity", "confusion"} & set(_figures_of(plain))
    assert 'id="confirmation"' not in plain


def test_the_study_page_has_the_trust_panel_and_its_script(client: TestClient, confirmed: int) -> None:
    page = client.get(f"/dashboard/studies/{confirmed}").text
    for element in ("trust-panel", "fig-confirmation", "fig-affinity", "fig-confusion", "trust-affinity-table"):
        assert f'id="{element}"' in page
    assert page.index("/dashboard/static/trust.js") < page.index("/dashboard/static/study.js")
    script = client.get("/dashboard/static/trust.js")
    assert script.status_code == 200 and "AUX_TRUST" in script.text
