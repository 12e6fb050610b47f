"""The dashboard as a person meets it: real ``auxtune serve`` (auth on, one embedded worker process) over HTTP,
driven in headless Chromium (Debian's ``/usr/bin/chromium`` through Python Playwright).

One walk through the product: type the token once, see the studies page, paste an invalid spec and see each
error next to its line, open a running study, watch new trials arrive without a reload, download the report,
press cancel; then ``auxtune report --url`` writes the report too. Screenshots land in
``$AUXTUNE_ARTIFACTS/dashboard`` (default ``test-artifacts/dashboard``, git-ignored); every request the browser
made must have gone to the server and nowhere else.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.test_service import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("AUXTUNE_ARTIFACTS") or ROOT / "test-artifacts") / "dashboard"
TOKEN = "axt_e2e-dashboard-admin-token"
INVALID_SPEC = """\
name: broken
workload:
  name: synthetic
aux_tasks:
  - name: helpful
    loss: bogus
search:
  n_trials: 0
"""


def running_spec(name: str) -> dict:
    """Trials of about a second each, 300 of them: the study is still running when the test cancels it, however
    fast the machine (tiny trials finished all 200 before the study page opened)."""
    return {"name": name, "workload": {"name": "synthetic", "params": {"n_train": 2000, "n_val": 200}},
            "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"}],
            "search": {"algorithm": "random", "n_trials": 300, "seed": 0},
            "training": {"epochs": 8, "batch_size": 16, "lr": 0.003}}


def _require_browser() -> None:
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (apt-get install chromium; `make test` installs it)")
    if missing:
        message = "the dashboard's browser tests need " + " and ".join(missing)
        if os.environ.get("CI"):  # CI must drive the browser: a skip there would hide a broken dashboard
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def served(tmp_path: Path) -> Iterator[str]:
    """``auxtune serve`` with auth on and one embedded worker, on a free loopback port: placed with ``--gpus 0`` on
    a GPU faked by ``$AUXTUNE_FAKE_GPUS`` (it records that GPU; it trains on the CPU, as torch sees no CUDA here)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUXTUNE_")}
    env.update(AUXTUNE_ADMIN_TOKEN=TOKEN, AUXTUNE_DATA_DIR=str(tmp_path / "data"), AUXTUNE_FAKE_GPUS="Fake GPU:8")
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "tuner.cli", "serve", "--db", f"sqlite:///{tmp_path / 'dash.db'}",
                             "--port", str(port), "--gpus", "0"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: proc.poll() is None and httpx.get(f"{base}/healthz", timeout=2).status_code == 200, 90,
                 "auxtune serve")
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _finished(page) -> int:  # type: ignore[no-untyped-def]
    return int(page.locator("#progress-text").inner_text().split(" ")[0])


def test_dashboard_in_chromium(tmp_path: Path) -> None:
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with served(tmp_path) as base, sync_playwright() as pw:
        api = httpx.Client(base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        created = api.post("/studies", json=running_spec("live-demo"))
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))

        def shot(name: str) -> None:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

        # The studies page: with auth on it asks for the token once, then lists the study.
        page.goto(f"{base}/dashboard/studies")
        expect(page.locator("#token-form")).to_be_visible()
        page.fill("#token-input", TOKEN)
        page.click("#token-form button[type=submit]")
        row = page.locator(f"tr[data-study='{sid}']")
        expect(row).to_contain_text("live-demo", timeout=15_000)
        shot("01-studies")

        # An invalid spec: each error shows beside the line of its field, and nothing is created.
        page.fill("#spec-text", INVALID_SPEC)
        page.click("#spec-submit")
        n_trials = page.locator("#spec-notes .note[data-field='search.n_trials']")
        expect(n_trials).to_be_visible(timeout=15_000)
        expect(n_trials).to_contain_text("greater than 0")
        assert n_trials.get_attribute("data-line") == "8"
        loss = page.locator("#spec-notes .note[data-field='aux_tasks.0.loss']")
        expect(loss).to_contain_text("allowed")
        assert loss.get_attribute("data-line") == "6"
        assert "●" in page.locator("#spec-gutter").inner_text()
        assert [s["name"] for s in api.get("/studies").json()["data"]] == ["live-demo"]
        shot("02-invalid-spec")

        # The running study's page, kept open: new trials arrive without a reload.
        page.click(f"tr[data-study='{sid}'] a >> nth=0")
        page.wait_for_selector("body[data-rendered='1']", timeout=30_000)
        page.evaluate("window.__stillTheSamePage = true")
        before = _finished(page)
        page.wait_for_function(f"Number(document.querySelector('#progress-text').textContent.split(' ')[0]) > "
                               f"{before}", timeout=150_000, polling=500)
        assert page.evaluate("window.__stillTheSamePage") is True  # updated in place, never reloaded
        expect(page.locator("#trials-body tr[data-state='complete']").first).to_be_visible()
        expect(page.locator("#trials-body .badge.control").first).to_have_text("baseline λ=0")
        expect(page.locator("#best-lambdas")).to_contain_text('"helpful"')
        expect(page.locator("#sanity-counts")).to_contain_text("passed")
        expect(page.locator("#workers-body")).to_contain_text("GPU 0 (Fake GPU, 8 GiB) as cuda:0")  # its device
        # The trust panel: no confirmation yet (it says how to ask for one), task affinity measured per task.
        expect(page.locator("#trust-confirmation")).to_contain_text("confirm")
        expect(page.locator("#trust-affinity-table-body tr")).to_have_count(2)
        assert page.locator("#fig-history .main-svg").count() > 0 and page.locator("#fig-curves .main-svg").count()
        assert page.locator("#fig-parallel canvas").count() > 0  # WebGL allowed by the page's CSP
        expect(page.locator("#fig-parallel")).not_to_contain_text("WebGL is not supported")
        shot("03-study-live")

        # The report downloads through the token-checked API as one self-contained file.
        with page.expect_download() as download:
            page.click("#btn-report")
        report = tmp_path / "report.html"
        download.value.save_as(report)
        html = report.read_text(encoding="utf-8")
        assert "Study live-demo" in html and "Plotly.newPlot" in html and "<script src=" not in html

        # Cancel, confirming the dialog: the page shows it, and the API agrees.
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#btn-cancel")
        expect(page.locator("#study-status")).to_have_text("cancelled", timeout=15_000)
        expect(page.locator("#btn-cancel")).to_be_disabled()
        assert api.get(f"/studies/{sid}").json()["status"] == "cancelled"
        shot("04-cancelled")
        browser.close()

        # The same report from the command line, over HTTP with the token.
        out = tmp_path / "cli-report.html"
        cli = subprocess.run([sys.executable, "-m", "tuner.cli", "report", "live-demo", "--url", base, "--token",
                              TOKEN, "-o", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert cli.returncode == 0, cli.stderr
        assert "Study live-demo" in out.read_text(encoding="utf-8")

    server = urlsplit(base).netloc
    elsewhere = [u for u in requested
                 if not u.startswith("data:") and urlsplit(u.removeprefix("blob:")).netloc != server]
    assert requested and not elsewhere, elsewhere  # plotly.js and everything else came from the server
    assert not errors, errors
