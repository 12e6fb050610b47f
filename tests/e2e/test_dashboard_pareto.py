"""A multi-objective study's page in headless Chromium: the best-λ panel says there is a front, the Pareto panel
shows its table and study.js draws its figure (the JSON behind it: ``tests/api/routes/test_dashboard_pareto.py``);
its row on the studies page counts the front.

The server is ``python -m api --no-auth`` with no worker; the trials are finished through the store, as a worker
would, so nothing trains and the test takes seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from storage import Store
from tests.api.factories import spec
from tests.api.routes.test_dashboard_pareto import VECTORS
from tests.api.routes.test_pareto import OBJECTIVES, SEARCH, finish
from tests.api.test_server import server
from tests.e2e.test_dashboard import ARTIFACTS, CHROMIUM, _require_browser


def test_the_front_is_drawn_in_chromium(tmp_path: Path) -> None:
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    db = f"sqlite:///{tmp_path / 'front.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUXTUNE_")}
    with server(["-m", "api", "--port", "{port}", "--db", db, "--no-auth"], env, tmp_path / "server.log") as base, \
            sync_playwright() as pw:
        created = httpx.post(f"{base}/api/v1/studies", json=spec("front", objective=OBJECTIVES, search=SEARCH))
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        with Store(db) as store:
            numbers = finish(store, sid, VECTORS)
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{base}/dashboard/studies/{sid}")
        page.wait_for_selector("body[data-rendered='1']", timeout=60_000)

        expect(page.locator("#best-title")).to_have_text("Best λ: a Pareto front")
        expect(page.locator("#best-summary")).to_contain_text("no single best λ: 3 of 5 complete trials")
        assert page.locator("#best-lambdas").is_hidden() and page.locator("#btn-copy-best").is_disabled()
        expect(page.locator("#pareto-panel")).to_be_visible()
        expect(page.locator("#pareto-how")).to_contain_text("3 of 5 complete trials are on the front")
        rows = page.locator("#pareto-body tr")
        expect(rows).to_have_count(3)
        assert [int(n) for n in rows.evaluate_all("rows => rows.map(r => r.dataset.trial)")] == [
            numbers[0], numbers[1], numbers[3]]
        expect(page.locator("#pareto-head")).to_contain_text("val_loss:harmful ↓")
        # The figure: plotly drew both traces, 3 points on the front and 2 dominated ones.
        expect(page.locator("#fig-pareto .main-svg").first).to_be_attached()
        assert page.locator("#fig-pareto .scatterlayer .trace").count() >= 2
        assert page.locator("#fig-pareto .scatterlayer .point").count() == len(VECTORS) + 2  # + 2 control marks
        rows.nth(1).click()  # a trial of the front: its curves are overlaid
        expect(page.locator("#curves-note")).to_contain_text(f"selected: #{numbers[1]}", timeout=15_000)
        expect(rows.nth(1)).to_have_class("selected sortable")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "pareto.png"), full_page=True)

        # The studies page: the study's row counts its front, over which objectives, instead of one best value.
        page.goto(f"{base}/dashboard/studies")
        page.wait_for_selector("body[data-rendered='1']", timeout=60_000)
        row = page.locator(f"#studies-body tr[data-study='{sid}']")
        expect(row.locator(".pareto-count")).to_have_text("Pareto front: 3")
        expect(row.locator(".pareto-over")).to_contain_text("val_accuracy ↑, val_loss:harmful ↓")
        assert row.locator(".pareto-over a").get_attribute("href") == f"/dashboard/studies/{sid}"
        browser.close()
    assert not errors, errors
