"""The dashboard through FastAPI's TestClient: pages and assets, the JSON it polls, the report, ``auxtune report``.

The browser side (rendering, live updates, buttons, submission) is driven in real Chromium by
``tests/e2e/test_dashboard.py``; these tests check what the server sends, on real SQLite stores.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from plotly.offline import get_plotlyjs

from api.config import Settings
from api.dashboard.lambda_figures import PARALLEL_LIMIT
from api.dashboard.sampling import PLOT_LIMIT
from api.main import create_app
from storage import Store
from tests.api.conftest import make_settings
from tests.api.dashboard_factories import populated_study
from tests.api.factories import ADMIN, STUDIES, create_study, finish_trials, spec, user

ROOT = Path(__file__).resolve().parents[3]
DASH = "/api/v1/dashboard/studies"


def values(data: Any) -> list[Any]:
    """A plotly data array as a list, whether sent as a list or as a base64 typed array."""
    if isinstance(data, dict) and "bdata" in data:
        array = np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"])
        if "shape" in data:
            array = array.reshape([int(n) for n in str(data["shape"]).split(",")])
        return [None if isinstance(v, float) and np.isnan(v) else v for v in array.tolist()]
    return list(data)


def trace(figure: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in figure["data"] if t.get("name", "").startswith(name))


@pytest.fixture
def played(client: TestClient, store: Store) -> dict[str, Any]:
    """A study whose controls and 4 more trials ran through the store as workers run them (one fails the
    sanity gate)."""
    study = create_study(client, "played")
    done = finish_trials(store, study["id"], [0.5, 0.6, None, 0.7, 0.65, 0.72])
    return {**study, "trials": done}


# -- pages and assets ---------------------------------------------------------------------------------------------
def test_pages_are_shells_that_load_only_this_servers_assets(client: TestClient, played: dict) -> None:
    assert client.get("/dashboard", follow_redirects=False).headers["location"] == "/dashboard/studies"
    for path in ("/dashboard/studies", f"/dashboard/studies/{played['id']}"):
        r = client.get(path)  # no token: a page holds no study data
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "connect-src 'self'" in csp
        sources = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert sources and all(s.startswith(("/", "data:")) for s in sources), sources
        assert "played" not in r.text  # the study's data comes from the token-checked JSON only
    page = client.get(f"/dashboard/studies/{played['id']}").text
    assert "/dashboard/static/plotly.min.js" in page and 'data-auth="on"' in page


def test_plotly_js_is_the_installed_packages_bundle_gzipped_and_cached(client: TestClient) -> None:
    r = client.get("/dashboard/static/plotly.min.js", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert r.text == get_plotlyjs()  # httpx undid the gzip
    assert int(r.headers["content-length"]) < len(get_plotlyjs().encode()) / 2
    again = client.get("/dashboard/static/plotly.min.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and not again.content
    assert client.get("/dashboard/static/../main.py").status_code == 404
    assert client.get("/dashboard/static/nope.js").status_code == 404


def test_with_auth_off_the_pages_say_so_and_the_json_needs_no_token(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, auth=False)), base_url="http://127.0.0.1") as c:
        assert 'data-auth="off"' in c.get("/dashboard/studies").text
        c.post(STUDIES, json=spec("open"))
        assert c.get("/api/v1/dashboard/studies").json()["data"][0]["name"] == "open"


# -- the JSON the pages poll ----------------------------------------------------------------------------------------
def test_study_json_needs_the_owners_token(client: TestClient, played: dict) -> None:
    assert client.get(f"{DASH}/{played['id']}").status_code == 401
    assert client.get(f"{DASH}/{played['id']}", headers=user(client, "mallory")).status_code == 403
    assert client.get(f"{DASH}/999").status_code == 401
    assert client.get(f"{DASH}/999", headers=ADMIN).status_code == 404
    assert client.get(f"{DASH}", headers=user(client, "mallory")).json() == {"data": [], "count": 0}


def test_state_shows_progress_best_controls_and_sanity(client: TestClient, played: dict) -> None:
    sid = played["id"]
    state = client.get(f"{DASH}/{sid}", headers=ADMIN).json()
    assert state["study"]["name"] == "played" and state["total"] == 6 and state["finished"] == 6
    assert state["counts"]["complete"] == 5 and state["counts"]["failed_sanity"] == 1
    best = client.get(f"{STUDIES}/{sid}/best", headers=ADMIN).json()
    assert state["best"]["trial"] == best["trial"] == 5 and state["best"]["lambdas"] == best["lambdas"]
    assert state["best"]["lambdas"]["neutral"] == 0.25  # the fixed λ too, as /best gives it
    assert [(c["trial"], c["label"], c["value"]) for c in state["controls"]] == [
        (0, "baseline λ=0", 0.5), (1, "λ=1", 0.6)]
    sanity = state["sanity"]
    assert (sanity["passed"], sanity["failed"]) == (5, 1)
    assert sanity["groups"] == [{"check": "nan loss", "count": 1, "example": "nan loss", "trials": [2]}]
    assert set(state["figures"]) == {"history", "parallel", "slice", "contour"}


def test_history_marks_the_controls_and_a_monotone_best_so_far(client: TestClient, played: dict) -> None:
    history = client.get(f"{DASH}/{played['id']}", headers=ADMIN).json()["figures"]["history"]
    line = trace(history, "best so far")
    assert values(line["y"]) == [0.5, 0.6, 0.7, 0.72, 0.72] and values(line["x"]) == [0, 1, 3, 5, 5]
    assert values(trace(history, "baseline λ=0")["y"]) == [0.5] and values(trace(history, "λ=1")["y"]) == [0.6]
    assert sorted(values(trace(history, "trial")["x"])) == [3, 4, 5]  # controls drawn apart; the failed one not at all
    assert {a["text"] for a in history["layout"]["annotations"]} == {"baseline λ=0: 0.5", "λ=1: 0.6"}


def test_an_unchanged_study_answers_a_poll_with_its_version_only(client: TestClient, store: Store) -> None:
    sid = create_study(client, "live")["id"]
    finish_trials(store, sid, [0.5, 0.6])
    store.register_worker("here", socket.gethostname(), "cpu", os.getpid())  # alive: no "no live worker" warning
    first = client.get(f"{DASH}/{sid}", headers=ADMIN).json()
    assert client.get(f"{DASH}/{sid}", params={"since": first["version"]}, headers=ADMIN).json() == {
        "version": first["version"], "unchanged": True}
    finish_trials(store, sid, [0.7])
    grown = client.get(f"{DASH}/{sid}", params={"since": first["version"]}, headers=ADMIN).json()
    assert grown["unchanged"] is False and (first["finished"], grown["finished"]) == (2, 3)
    assert client.post(f"{STUDIES}/{sid}/pause", headers=ADMIN).status_code == 200
    paused = client.get(f"{DASH}/{sid}", params={"since": grown["version"]}, headers=ADMIN).json()
    assert paused["unchanged"] is False and paused["study"]["status"] == "paused"


def test_table_sorts_filters_and_pages(client: TestClient, played: dict) -> None:
    url = f"{DASH}/{played['id']}/trials"
    page = client.get(url, params={"sort": "value", "order": "desc", "limit": 4}, headers=ADMIN).json()
    assert page["count"] == 6 and [r["value"] for r in page["data"]] == [0.72, 0.7, 0.65, 0.6]
    last = client.get(url, params={"sort": "value", "order": "desc", "offset": 4}, headers=ADMIN).json()["data"]
    assert [r["number"] for r in last] == [0, 2]  # no value: last, whatever the order
    failed = client.get(url, params={"state": "failed_sanity"}, headers=ADMIN).json()
    assert failed["count"] == 1 and failed["data"][0]["sanity"] == {"passed": False, "reason": "nan loss"}
    rows = client.get(url, params={"sort": "lambda:helpful"}, headers=ADMIN).json()["data"]
    helpful = [r["lambdas"]["helpful"] for r in rows]
    assert helpful == sorted(helpful) and rows[0]["control"] == "baseline λ=0"
    row = next(r for r in rows if r["number"] == 3)
    assert row["worker"] == "w1" and row["attempt"] == 1 and row["seconds"] >= 0 and row["sanity"]["passed"]
    bad = client.get(url, params={"sort": "lambda:nope"}, headers=ADMIN)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "sort"]
    assert "lambda:helpful" in bad.json()["detail"][0]["msg"]


def test_curves_overlay_the_chosen_trials_or_the_controls_and_best(client: TestClient, played: dict) -> None:
    url = f"{DASH}/{played['id']}/curves"
    default = client.get(url, headers=ADMIN).json()
    assert [t["number"] for t in default["trials"]] == [0, 1, 5] and all(t["epochs"] == 3 for t in default["trials"])
    chosen = client.get(url, params={"trial": [3, 4]}, headers=ADMIN).json()
    names = {t["name"] for t in chosen["figure"]["data"]}
    assert {"#3 main", "#3 helpful", "#4 main", "#4 accuracy"} <= names and not any(n.startswith("#0") for n in names)
    accuracy = trace(chosen["figure"], "#3 accuracy")
    assert values(accuracy["x"]) == [0, 1, 2] and values(accuracy["y"]) == pytest.approx([0.68, 0.69, 0.7])
    many = client.get(url, params={"trial": list(range(15))}, headers=ADMIN).json()
    assert len(many["trials"]) == 10
    assert client.get(url, params={"trial": -1}, headers=ADMIN).status_code == 422


def test_importance_is_fanova_over_the_searched_lambdas(client: TestClient, store: Store) -> None:
    study = populated_study(store, "imp", 200, owner="admin")
    imp = client.get(f"{DASH}/{study.id}/importance", headers=ADMIN).json()
    assert set(imp["values"]) == {"helpful", "harmful"} and sum(imp["values"].values()) == pytest.approx(1.0)
    assert imp["values"]["harmful"] > imp["values"]["helpful"]  # 0.04·h² over [0, 2] varies more than 0.05·(x-1.2)²
    assert imp["n_trials"] > 150 and trace(imp["figure"], "")["type"] == "bar"
    young = create_study(client, "young")
    early = client.get(f"{DASH}/{young['id']}/importance", headers=ADMIN).json()
    assert early["values"] is None and "needs 4 complete trials" in early["reason"]


def test_at_scale_plots_are_sampled_and_the_table_paged(client: TestClient, store: Store) -> None:
    study = populated_study(store, "big", 3000, running=3, owner="admin")
    r = client.get(f"{DASH}/{study.id}", headers={**ADMIN, "Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip" and int(r.headers["content-length"]) < 150_000
    state = r.json()
    complete = state["counts"]["complete"]
    assert state["finished"] == 3000 and state["counts"]["running"] == 3 and complete > 2500
    assert state["sampled"] == {"drawn": PLOT_LIMIT, "complete": complete}
    history = state["figures"]["history"]
    drawn = values(trace(history, "trial")["x"])
    assert len(drawn) == PLOT_LIMIT - 2 and f"{PLOT_LIMIT} of {complete} drawn" in history["layout"]["title"]["text"]
    assert state["best"]["trial"] in drawn  # the sample keeps the best, and every best-so-far step
    assert set(values(trace(history, "best so far")["x"])[:-1]) - {0, 1} <= set(drawn)
    assert len(values(state["figures"]["parallel"]["data"][0]["dimensions"][0]["values"])) == PARALLEL_LIMIT
    table = client.get(f"{DASH}/{study.id}/trials", params={"state": "running"}, headers=ADMIN).json()
    assert table["count"] == 3 and len(client.get(f"{DASH}/{study.id}/trials", headers=ADMIN).json()["data"]) == 50


# -- studies page, pasted specs ------------------------------------------------------------------------------------
def test_studies_page_rows_have_progress_and_best(client: TestClient, played: dict) -> None:
    alice = user(client, "alice")
    create_study(client, "hers", headers=alice)
    rows = client.get(DASH, headers=ADMIN).json()
    assert rows["count"] == 2
    mine = next(r for r in rows["data"] if r["name"] == "played")
    assert (mine["finished"], mine["n_trials"], mine["running"]) == (6, 6, 0)
    assert mine["best"]["value"] == 0.72 and mine["best"]["lambdas"]["neutral"] == 0.25
    assert mine["links"]["page"] == f"/dashboard/studies/{played['id']}"
    assert [r["name"] for r in client.get(DASH, headers=alice).json()["data"]] == ["hers"]


def test_a_pasted_spec_becomes_json_with_the_line_of_every_field(client: TestClient) -> None:
    text = "name: pasted\nworkload: {name: synthetic}\naux_tasks:\n  - name: helpful\n    loss: bogus\n" \
           "search:\n  n_trials: 0\n"
    parsed = client.post("/api/v1/dashboard/spec", content=text, headers=ADMIN).json()
    assert parsed["document"]["search"] == {"n_trials": 0}
    assert parsed["lines"]["search.n_trials"] == 7 and parsed["lines"]["aux_tasks.0.loss"] == 5
    refused = client.post(STUDIES, json=parsed["document"], headers=ADMIN).json()["detail"]
    fields = {".".join(map(str, e["loc"][1:])) for e in refused}
    assert {"search.n_trials", "aux_tasks.0.loss"} <= fields and fields <= set(parsed["lines"])
    json_text = client.post("/api/v1/dashboard/spec", content='{"name": "j", "search": {"n_trials": 3}}',
                            headers=ADMIN).json()
    assert json_text["document"] == {"name": "j", "search": {"n_trials": 3}} and json_text["lines"]["search"] == 1


@pytest.mark.parametrize(("text", "says"), [
    ("name: x\nsearch: [1,\n", "line 3, column 1"),
    ("- just\n- a list\n", "must be a mapping"),
    ("a: &x [1, 2]\nb: *x\n", "anchors and aliases"),
    ("a: " + "[" * 1500 + "]" * 1500, "nested too deeply"),
])
def test_a_pasted_spec_that_is_not_one_is_refused_with_where(client: TestClient, text: str, says: str) -> None:
    r = client.post("/api/v1/dashboard/spec", content=text, headers=ADMIN)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body"] and says in r.json()["detail"][0]["msg"]
    assert client.post("/api/v1/dashboard/spec", content=text).status_code == 401


# -- the report ---------------------------------------------------------------------------------------------------
def _self_contained(html: str) -> None:
    assert get_plotlyjs() in html  # inlined, not linked
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|<img[^>]+src=\"http", html)


def test_report_is_one_self_contained_html_file(client: TestClient, played: dict) -> None:
    r = client.get(f"{STUDIES}/{played['id']}/report.html", headers=ADMIN)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    _self_contained(r.text)
    for figure in ("history", "importance", "parallel", "slice", "contour", "curves"):
        assert f'id="{figure}"' in r.text
    assert "Study played" in r.text and '"neutral": 0.25' in r.text and "baseline λ=0 (trial 0): 0.5" in r.text
    assert client.get(f"{STUDIES}/{played['id']}/report.html").status_code == 401


def test_auxtune_report_writes_the_same_file_from_the_store(settings: Settings, played: dict, tmp_path: Path) -> None:
    out = tmp_path / "out" / "played.html"
    out.parent.mkdir()
    done = subprocess.run([sys.executable, "-m", "tuner.cli", "report", "played", "--db", str(settings.db),
                           "-o", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    html = out.read_text(encoding="utf-8")
    _self_contained(html)
    assert "Study played" in html and "Top 5 trials" in html
    missing = subprocess.run([sys.executable, "-m", "tuner.cli", "report", "nope", "--db", str(settings.db),
                              "-o", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no study 'nope'" in missing.stderr


def test_gzip_is_only_for_clients_that_ask(client: TestClient, played: dict) -> None:
    plain = client.get(f"{DASH}/{played['id']}", headers={**ADMIN, "Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    zipped = client.get(f"{DASH}/{played['id']}", headers={**ADMIN, "Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.json()["version"] == plain.json()["version"]
