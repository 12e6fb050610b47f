"""``/dashboard``: the pages a person opens in a browser (studies, one study) and their static files.

The pages are shells: they hold no study data, so they need no token. Their scripts fetch everything from the
JSON API (``api.routes.dashboard_data`` and the study routes) with the token the user typed once (kept in the
browser's localStorage and sent as a bearer header), or with none under ``--no-auth``. Every page and file
comes from this server (plotly.js from the installed plotly package) and the Content-Security-Policy forbids
the browser to load or send anything elsewhere.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from api.config import API_PREFIX
from api.dashboard.assets import PAGE_CSP, asset, render, respond, static_response
from api.deps import SettingsDep, StudyId
from api.errors import ApiError
from storage import STUDY_STATUSES, TRIAL_STATES

router = APIRouter(prefix="/dashboard", tags=["dashboard"], include_in_schema=False)

#: Polling period of the study page (ms); an unchanged study answers a poll in a few bytes.
POLL_MS = 2000
EXAMPLE_SPEC = """\
name: my-study
workload:
  name: synthetic
aux_tasks:
  - {name: helpful, loss: bce}
  - {name: harmful, loss: mse, lambda: {low: 0.0, high: 2.0}}
search: {algorithm: tpe, n_trials: 20, seed: 0}
training: {epochs: 10}
"""
_PAGE_HEADERS = {"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff",
                 "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


def _page(request: Request, template: str, auth: bool, **context: object) -> Response:
    html = render(template, api=API_PREFIX, auth=auth, poll_ms=POLL_MS, **context)
    return respond(request, html.encode(), "text/html; charset=utf-8", _PAGE_HEADERS)


@router.get("", response_class=RedirectResponse)
def read_dashboard() -> RedirectResponse:
    return RedirectResponse("/dashboard/studies", status_code=307)


@router.get("/studies", response_class=HTMLResponse)
def read_studies_page(request: Request, settings: SettingsDep) -> Response:
    """Every study with status, progress, best value and λ; a form to submit a pasted spec."""
    return _page(request, "studies.html", settings.auth, statuses=STUDY_STATUSES, example_spec=EXAMPLE_SPEC)


@router.get("/studies/{study_id}", response_class=HTMLResponse)
def read_study_page(request: Request, settings: SettingsDep, study_id: StudyId) -> Response:
    """One study, live: trial table, plots, curves, sanity panel, best λ, pause/resume/cancel."""
    return _page(request, "study.html", settings.auth, study_id=study_id, trial_states=TRIAL_STATES)


@router.get("/static/{name}")
def read_static(request: Request, name: str) -> Response:
    """The dashboard's CSS and scripts, and plotly.js from the installed plotly package."""
    found = asset(name)
    if found is None:
        raise ApiError(404, f"no static file {name!r}", ["path", "name"], "not_found")
    return static_response(request, found)
