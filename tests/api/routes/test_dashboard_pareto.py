"""The Pareto front on the dashboard of a multi-objective study: the JSON the page draws, its figure, the report,
and the page's script that draws them (the browser side beyond that is ``tests/e2e/test_dashboard.py``'s)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from storage import Store
from tests.api.factories import ADMIN, STUDIES, create_study
from tests.api.routes.test_dashboard import DASH, trace, values
from tests.api.routes.test_pareto import OBJECTIVES, SEARCH, finish

ROOT = Path(__file__).resolve().parents[3]
#: (accuracy ↑, harmful loss ↓): trials 0, 1 and 3 trade off; 2 is dominated by 1, 4 by 3.
VECTORS = [[0.9, 0.5], [0.8, 0.2], [0.7, 0.3], [0.95, 0.9], [0.95, 0.95]]


def rounded(data: Any) -> list[float]:
    return [round(v, 6) for v in values(data)]


def mo_study(client: TestClient, store: Store, name: str = "front", objective: Any = OBJECTIVES,
             vectors: list[list[float]] = VECTORS) -> tuple[int, list[int]]:
    sid = create_study(client, name, objective=objective, search=SEARCH)["id"]
    return sid, finish(store, sid, vectors)


def test_the_study_json_carries_the_front_as_best_answers_it(client: TestClient, store: Store) -> None:
    sid, numbers = mo_study(client, store)
    state = client.get(f"{DASH}/{sid}", headers=ADMIN).json()
    best = client.get(f"{STUDIES}/{sid}/best", headers=ADMIN).json()
    assert state["pareto"] == best  # same front, λ, values, extremes and how-to-pick sentence
    assert [t["trial"] for t in state["pareto"]["front"]] == [numbers[0], numbers[1], numbers[3]]
    assert "Pareto-optimal" in state["pareto"]["how_to_pick"]

    figure = state["figures"]["pareto"]
    assert "figure_keys" in state and "pareto" in state["figure_keys"]
    front = trace(figure, "Pareto front")
    assert front["mode"] == "lines+markers"  # joined, in order of the first objective
    assert rounded(front["x"]) == [0.8, 0.9, 0.95] and rounded(front["y"]) == [0.2, 0.5, 0.9]  # float32 on the wire
    dominated = trace(figure, "dominated trial")
    assert sorted(rounded(dominated["x"])) == [0.7, 0.95]
    assert [values(row)[0] for row in values(dominated["customdata"])] == [numbers[2], numbers[4]]
    assert figure["layout"]["xaxis"]["title"]["text"] == "val_accuracy ↑"
    assert figure["layout"]["yaxis"]["title"]["text"] == "val_loss:harmful ↓"

    # A trial that dominates the whole front changes the answer and the figure on the next poll.
    finish(store, sid, [[0.99, 0.1]])
    again = client.get(f"{DASH}/{sid}?since={state['version']}", headers=ADMIN).json()
    assert again["pareto"]["count"] == 1 and again["figure_keys"]["pareto"] != state["figure_keys"]["pareto"]


def test_three_objectives_draw_a_scatter_matrix_with_the_front_marked(client: TestClient, store: Store) -> None:
    objective = [*OBJECTIVES, {"metric": "train_seconds"}]
    sid, numbers = mo_study(client, store, "three", objective, [[0.9, 0.5, 3.0], [0.8, 0.6, 4.0], [0.9, 0.4, 2.0]])
    state = client.get(f"{DASH}/{sid}", headers=ADMIN).json()
    assert [t["trial"] for t in state["pareto"]["front"]] == [numbers[2]]
    figure = state["figures"]["pareto"]
    front, dominated = trace(figure, "Pareto front"), trace(figure, "dominated trial")
    assert front["type"] == dominated["type"] == "splom"
    assert [d["label"] for d in front["dimensions"]] == ["val_accuracy ↑", "val_loss:harmful ↓", "train_seconds ↓"]
    assert [rounded(d["values"]) for d in front["dimensions"]] == [[0.9], [0.4], [2.0]]
    assert len(values(dominated["dimensions"][0]["values"])) == 2


def test_single_objective_study_has_no_front_panel(client: TestClient, store: Store) -> None:
    sid = create_study(client, "single")["id"]
    finish(store, sid, [[0.7], [0.9]])
    state = client.get(f"{DASH}/{sid}", headers=ADMIN).json()
    assert state["pareto"] is None and "pareto" not in state["figures"]
    assert state["best"]["value"] == 0.9
    report = client.get(f"{STUDIES}/{sid}/report.html", headers=ADMIN).text
    assert 'id="pareto"' not in report and "Pareto" not in report


def test_the_studies_page_row_counts_the_front_instead_of_one_best(client: TestClient, store: Store) -> None:
    single = create_study(client, "single")["id"]
    finish(store, single, [[0.7], [0.9]])
    sid, numbers = mo_study(client, store)
    rows = {r["id"]: r for r in client.get(DASH, headers=ADMIN).json()["data"]}
    mine = rows[sid]
    assert mine["pareto"] == {"metrics": ["val_accuracy", "val_loss:harmful"], "directions": ["maximize", "minimize"],
                              "count": len(store.pareto_front(sid)), "complete": len(VECTORS)}
    assert mine["pareto"]["count"] == 3
    assert mine["best"]["value"] == 0.95 and mine["best"]["primary_objective"] == "val_accuracy"  # labelled
    assert "pareto" not in rows[single] and "primary_objective" not in rows[single]["best"]  # as it was
    # The study page's JSON and the row agree.
    assert client.get(f"{DASH}/{sid}", headers=ADMIN).json()["pareto"]["count"] == mine["pareto"]["count"]


def test_the_studies_page_script_shows_the_front_of_a_multi_objective_row() -> None:
    """studies.js writes a row with ``pareto`` as its front's size, objectives and a link to the study page, in
    place of the best value and λ (the browser itself: ``tests/e2e/test_dashboard_pareto.py``)."""
    script = (ROOT / "api/dashboard/static/studies.js").read_text(encoding="utf-8")
    assert "...(study.pareto ? front(study) : [" in script
    front = script[script.index("function front(study)"):script.index("function row(study)")]
    assert "Pareto front: ${p.count}" in front and "study.links.page" in front and "p.metrics" in front
    assert "primary_objective" in front


def test_report_shows_the_front_table_and_figure(client: TestClient, store: Store) -> None:
    sid, numbers = mo_study(client, store)
    html = client.get(f"{STUDIES}/{sid}/report.html", headers=ADMIN).text
    assert '<div class="fig" id="pareto"></div>' in html and "Pareto-optimal" in html
    table = html[html.index('id="pareto-table"'):]
    table = table[:table.index("</table>")]
    rows = re.findall(r"<tr data-trial=\"(\d+)\">", table)
    assert [int(n) for n in rows] == [numbers[0], numbers[1], numbers[3]]
    assert "<th>val_loss:harmful ↓</th>" in table and "<th>λ harmful</th>" in table


def test_the_page_has_a_hidden_front_panel_that_study_js_fills_and_draws() -> None:
    """The page script draws every figure the JSON names into ``fig-<name>``: the panel must hold that element,
    and the script must show the panel, its table and the best-λ text from ``state.pareto``."""
    page = (ROOT / "api/dashboard/templates/study.html").read_text(encoding="utf-8")
    panel = page[page.index('id="pareto-panel"'):]
    assert re.search(r'<section class="card" id="pareto-panel" hidden>', page)
    assert 'id="fig-pareto"' in panel and 'id="pareto-body"' in panel
    script = (ROOT / "api/dashboard/static/study.js").read_text(encoding="utf-8")
    assert "function drawPareto(state)" in script and "drawPareto(state);" in script
    assert "plot(`fig-${name}`" in script  # every figure, the front's included
    assert "how_to_pick" in script and "drawPareto(view.paretoState)" in script
