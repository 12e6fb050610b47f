"""``/api/v1/dashboard/...``: the JSON the dashboard polls, and ``/api/v1/studies/{id}/report.html``.

Same tokens and owners as every other study route. Reads go through a per-app ``SnapshotCache``: a study is
re-read only when its version changed, and a poll that sends ``since=<version>`` of an unchanged study gets
``{"version": …, "unchanged": true}`` back. Large answers are gzipped when the client accepts it.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field

from api.dashboard.assets import json_response, respond
from api.dashboard.importance import ImportanceCache
from api.dashboard.lambda_figures import importance_figure
from api.dashboard.payloads import SORT_KEYS, curves, studies_page, study_state, trials_page, valid_sort
from api.dashboard.report import REPORT_CSP, report_html
from api.dashboard.snapshot import SnapshotCache, StudySnapshot
from api.dashboard.spec_text import parse_spec_text
from api.deps import MAX_ID, CurrentPrincipal, OwnedStudy, SettingsDep, StoreDep
from api.errors import ApiError, error_responses
from api.routes.studies import StudyStatus
from api.routes.trials import TrialState
from tuner.execution.liveness import count_alive, no_worker_warning

router = APIRouter(tags=["dashboard"])

_AUTH = (401, 403, 404, 422)
_lock = threading.Lock()
Since = Annotated[str | None, Query(max_length=200, description="the version of the last answer: "
                                                                 "answers {unchanged: true} if nothing changed")]


@dataclass
class DashboardCaches:
    """What the dashboard keeps between requests of one app: the latest snapshots and importances."""

    snapshots: SnapshotCache = field(default_factory=SnapshotCache)
    importance: ImportanceCache = field(default_factory=ImportanceCache)


def dashboard_caches(request: Request) -> DashboardCaches:
    with _lock:
        caches = getattr(request.app.state, "dashboard", None)
        if caches is None:
            caches = request.app.state.dashboard = DashboardCaches()
        return caches  # type: ignore[no-any-return]


CachesDep = Annotated[DashboardCaches, Depends(dashboard_caches)]


def _snapshot(caches: DashboardCaches, store: StoreDep, study: OwnedStudy) -> StudySnapshot:
    return caches.snapshots.get(store, study)


def _unchanged(snapshot: StudySnapshot, since: str | None) -> dict[str, object] | None:
    return {"version": snapshot.version, "unchanged": True} if since == snapshot.version else None


@router.get("/dashboard/studies", responses=error_responses(401, 422))
def read_dashboard_studies(
    request: Request, store: StoreDep, principal: CurrentPrincipal,
    status: Annotated[StudyStatus | None, Query(description="only studies with this status")] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    """Your studies, newest first, with progress (finished/total), trials per state, best value and λ."""
    page, count = store.studies_of(principal.owner, every_owner=principal.is_admin, status=status, offset=offset,
                                   limit=limit)
    return json_response(request, studies_page(store, page, count))


@router.get("/dashboard/studies/{study_id}", responses=error_responses(*_AUTH))
def read_dashboard_study(request: Request, study: OwnedStudy, store: StoreDep, caches: CachesDep,
                         settings: SettingsDep, since: Since = None) -> Response:
    """The study page's data: status, counts, best λ, controls, sanity and trust panels, the history and λ figures
    (plotly JSON; scatter plots sampled past 1 500 complete trials, contours aggregated); ``warning`` (also on an
    unchanged study: workers die without changing it) while it waits with no live worker to take it."""
    snapshot = _snapshot(caches, store, study)
    warning = no_worker_warning(snapshot.study.status, count_alive(store.workers(), settings.worker_alive_s))
    answer = _unchanged(snapshot, since) or study_state(snapshot)
    return json_response(request, {**answer, "warning": warning} if warning else answer)


@router.get("/dashboard/studies/{study_id}/trials", responses=error_responses(*_AUTH))
def read_dashboard_trials(
    request: Request, study: OwnedStudy, store: StoreDep, caches: CachesDep,
    sort: Annotated[str, Query(max_length=250, description=f"one of {SORT_KEYS} or lambda:<aux task>")] = "number",
    order: Literal["asc", "desc"] = "asc",
    state: Annotated[list[TrialState] | None, Query(description="only trials in these states (repeatable)")] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    since: Since = None,
) -> Response:
    """One page of the trial table, sorted (trials without a value for the key last) and filtered by state."""
    snapshot = _snapshot(caches, store, study)
    if not valid_sort(sort, snapshot):
        allowed = [*SORT_KEYS, *(f"lambda:{d.name}" for d in snapshot.dims)]
        raise ApiError(422, f"cannot sort by {sort!r}; sort by one of {allowed}", ["query", "sort"], "invalid_sort")
    unchanged = _unchanged(snapshot, since)
    if unchanged is not None:
        return json_response(request, unchanged)
    return json_response(request, trials_page(snapshot, store, sort, order == "desc", state, offset, limit))


@router.get("/dashboard/studies/{study_id}/importance", responses=error_responses(*_AUTH))
def read_dashboard_importance(request: Request, study: OwnedStudy, store: StoreDep, caches: CachesDep) -> Response:
    """fANOVA importance of each searched λ (Optuna's evaluator on at most 300 complete trials) and its figure."""
    result = caches.importance.get(_snapshot(caches, store, study))
    return json_response(request, {"values": result.values, "n_trials": result.n_trials, "reason": result.reason,
                                   "figure": importance_figure(result)})


@router.get("/dashboard/studies/{study_id}/curves", responses=error_responses(*_AUTH))
def read_dashboard_curves(
    request: Request, study: OwnedStudy, store: StoreDep, caches: CachesDep,
    trial: Annotated[list[Annotated[int, Field(ge=0, le=MAX_ID)]] | None,
                     Query(description="trial numbers (repeatable, at most 10); default: the controls and the best")
                     ] = None,
) -> Response:
    """Per-epoch train/val loss of every task and main-task accuracy of the chosen trials, overlaid."""
    return json_response(request, curves(_snapshot(caches, store, study), store, trial))


@router.post("/dashboard/spec", responses=error_responses(401, 413, 422))
async def parse_spec(request: Request, _: CurrentPrincipal) -> Response:
    """A study spec pasted as YAML or JSON (the request body, text) → ``{"document", "lines"}``: the JSON to
    POST to /studies and the line of every field, so that the page can show each error next to its line."""
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(422, "the spec must be UTF-8 text", ["body"], "invalid_syntax") from None
    document, lines = parse_spec_text(text)
    return json_response(request, {"document": document, "lines": lines})


@router.get("/studies/{study_id}/report.html", response_class=Response, responses=error_responses(*_AUTH))
def read_report(request: Request, study: OwnedStudy, store: StoreDep, caches: CachesDep) -> Response:
    """The study as one self-contained HTML file (plotly.js inlined, nothing fetched): figures, best λ, controls,
    sanity panel, top trials and the spec; ``auxtune report`` writes the same file."""
    html = report_html(store, study, caches.snapshots, caches.importance)
    headers = {"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff",
               "Content-Disposition": f'inline; filename="{re.sub(r"[^A-Za-z0-9_.-]", "_", study.name)}-report.html"',
               "Cache-Control": "no-store"}
    return respond(request, html.encode(), "text/html; charset=utf-8", headers)
