"""The JSON the dashboard's pages poll, and that the report embeds: built from a ``StudySnapshot``.

``study_state`` is the study page's header, panels (sanity; trust: ``api.dashboard.trust``; on a multi-objective
study the Pareto front: ``api.dashboard.pareto``) and figures
(memoised per snapshot, so every poll of an unchanged study reuses it); ``trials_page`` one sorted, filtered
page of the trial table; ``curves`` the per-epoch curves of a few chosen trials; ``studies_page`` the rows of
the studies page.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from api.config import API_PREFIX
from api.dashboard.figures import curves_figure, history_figure
from api.dashboard.lambda_figures import contour_figure, parallel_figure, slice_figure
from api.dashboard.pareto import pareto_figure, pareto_panel
from api.dashboard.sampling import plot_sample
from api.dashboard.snapshot import StudySnapshot, lambda_space
from api.dashboard.trust import trust_panel
from storage import FINISHED_TRIAL_STATES, TRIAL_STATES, Store, StudyRecord, TrialPoint
from tuner.analysis.pareto import pareto_so_far
from tuner.spec import primary_metric
from tuner.spec.params import is_param_key, param_key, searched_params

#: Most trials whose curves are drawn at once.
MAX_CURVES = 10
SORT_KEYS = ("number", "value", "state", "attempt", "worker", "seconds")
_NUMBERS = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?%?")


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def study_summary(study: StudyRecord) -> dict[str, Any]:
    spec = study.spec
    return {"id": study.id, "name": study.name, "status": study.status, "status_reason": study.status_reason,
            "owner": study.owner, "workload": str((spec.get("workload") or {}).get("name", "")),
            "metric": primary_metric(spec), "direction": study.direction,
            "n_trials": study.n_trials, "created_at": iso(study.created_at), "updated_at": iso(study.updated_at),
            "links": {"page": f"/dashboard/studies/{study.id}", "api": f"{API_PREFIX}/studies/{study.id}",
                      "best": f"{API_PREFIX}/studies/{study.id}/best",
                      "report": f"{API_PREFIX}/studies/{study.id}/report.html"}}


def all_lambdas(spec: dict[str, Any], params: dict[str, Any]) -> dict[str, float]:
    """Every aux task's λ of a trial, fixed ones included, in the spec's order (what ``/best`` answers)."""
    order = [t.get("name") for t in spec.get("aux_tasks") or []]
    _, fixed = lambda_space(spec, [])
    merged = {**fixed, **{k: float(v) for k, v in params.items() if isinstance(v, int | float) and not is_param_key(k)}}
    return {k: merged[k] for k in sorted(merged, key=lambda k: order.index(k) if k in order else len(order))}


def _finished(counts: dict[str, int]) -> int:
    return sum(counts.get(s, 0) for s in FINISHED_TRIAL_STATES)


def sanity_panel(snapshot: StudySnapshot) -> dict[str, Any]:
    """Passed/failed counts and the failures grouped by the checks that failed (else by the reason's words,
    figures masked), largest group first, each with its latest reason and the trials."""
    groups: dict[str, dict[str, Any]] = {}
    for failure in snapshot.sanity.failures:
        key = ", ".join(failure.checks) or _NUMBERS.sub("#", failure.reason) or "no reason given"
        group = groups.setdefault(key, {"check": key, "count": 0, "example": "", "trials": []})
        group["count"] += 1
        group["example"] = failure.reason
        if len(group["trials"]) < 10:
            group["trials"].append(failure.number)
    study = snapshot.study
    return {"passed": snapshot.sanity.passed, "failed": snapshot.sanity.failed,
            "groups": sorted(groups.values(), key=lambda g: (-g["count"], g["check"])),
            "study_gate": study.status_reason if study.status == "failed" else ""}


def _build_state(snapshot: StudySnapshot) -> dict[str, Any]:
    counts = dict.fromkeys(TRIAL_STATES, 0) | snapshot.counts()
    best = snapshot.best
    by_number = {p.number: p for p in snapshot.points}
    trust, trust_figures = trust_panel(snapshot)
    figures = {"history": history_figure(snapshot), "parallel": parallel_figure(snapshot),
               "slice": slice_figure(snapshot), "contour": contour_figure(snapshot), **trust_figures}
    pareto = pareto_panel(snapshot)
    if pareto is not None:  # a multi-objective study: its answer is the front (single-objective pages unchanged)
        figures["pareto"] = pareto_figure(snapshot, pareto["metrics"])
    return {
        "version": snapshot.version, "unchanged": False, "study": study_summary(snapshot.study), "counts": counts,
        "finished": _finished(counts), "total": snapshot.study.n_trials,
        "best": None if best is None else {"trial": best.number, "value": best.value,
                                           "lambdas": all_lambdas(snapshot.study.spec, best.params),
                                           "control": snapshot.controls.get(best.number),
                                           **_searched(best.params)},
        "controls": [{"trial": n, "label": label, "state": by_number[n].state, "value": by_number[n].value}
                     for n, label in sorted(snapshot.controls.items())],
        "lambdas": [{"name": d.name, "low": d.low, "high": d.high, "log": d.log} for d in snapshot.dims],
        "fixed": snapshot.fixed, "sanity": sanity_panel(snapshot), "trust": trust, "pareto": pareto,
        "sampled": {"drawn": len(plot_sample(snapshot)), "complete": len(snapshot.complete)},
        "figures": figures, "figure_keys": {name: _key(figure) for name, figure in figures.items()},
    }


def _key(figure: dict[str, Any]) -> str:
    """Changes when the figure does: the page redraws only figures whose key changed."""
    text = json.dumps(figure, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def study_state(snapshot: StudySnapshot) -> dict[str, Any]:
    """The study page's data (see the module's docstring), memoised per snapshot."""
    return snapshot.memo("state", lambda: _build_state(snapshot))


def _sort_key(key: str, snapshot: StudySnapshot) -> Any:
    if key.startswith("lambda:"):
        name = key.removeprefix("lambda:")
        return lambda p: p.params.get(name) if isinstance(p.params.get(name), int | float) else None
    return {"number": lambda p: p.number, "value": lambda p: p.value, "state": lambda p: TRIAL_STATES.index(p.state)
            if p.state in TRIAL_STATES else len(TRIAL_STATES), "attempt": lambda p: p.attempt,
            "worker": lambda p: p.worker_id, "seconds": lambda p: p.seconds}[key]


def valid_sort(key: str, snapshot: StudySnapshot) -> bool:
    return key in SORT_KEYS or key in {f"lambda:{name}" for name in table_names(snapshot)}


def sorted_points(snapshot: StudySnapshot, key: str, descending: bool) -> list[TrialPoint]:
    """Every trial ordered by ``key`` (trials without a value for it last, whatever the order; ties by number)."""
    def build() -> list[TrialPoint]:
        get = _sort_key(key, snapshot)
        present = [p for p in snapshot.points if get(p) is not None]
        missing = [p for p in snapshot.points if get(p) is None]
        present.sort(key=lambda p: p.number)
        present.sort(key=get, reverse=descending)
        return present + missing

    return snapshot.memo(f"sorted:{key}:{descending}", build)


def trials_page(snapshot: StudySnapshot, store: Store, sort: str = "number", descending: bool = False,
                states: Sequence[str] | None = None, offset: int = 0, limit: int = 50) -> dict[str, Any]:
    """One page of the trial table: λ per aux task, value, state, sanity outcome and reason, attempt, worker,
    duration, control label."""
    ordered = sorted_points(snapshot, sort, descending)
    if states:
        ordered = [p for p in ordered if p.state in states]
    page = ordered[offset:offset + limit]
    sanity = store.sanity_of_trials(snapshot.study.id, [p.number for p in page])
    rows = []
    for p in page:
        gate = sanity.get(p.number)
        rows.append({"number": p.number, "state": p.state, "lambdas": p.params, "value": p.value,
                     "attempt": p.attempt, "worker": p.worker_id, "seconds": p.seconds, "reason": p.reason,
                     "started_at": iso(p.started_at), "finished_at": iso(p.finished_at),
                     "control": snapshot.controls.get(p.number),
                     "sanity": None if gate is None else {"passed": gate.passed, "reason": gate.reason}})
    return {"version": snapshot.version, "unchanged": False, "data": rows, "count": len(ordered),
            "offset": offset, "limit": limit, "sort": sort, "order": "desc" if descending else "asc",
            "lambda_names": table_names(snapshot)}


def table_names(snapshot: StudySnapshot) -> list[str]:
    """The trial table's param columns: each searched λ, then each searched training param (``param.<name>``)."""
    searched = (snapshot.study.spec.get("search") or {}).get("params") or {}
    return [d.name for d in snapshot.dims] + [param_key(str(n)) for n in searched]


def default_curve_trials(snapshot: StudySnapshot) -> list[int]:
    """The controls and the best trial (or, before any completes, the latest trials)."""
    chosen = sorted(snapshot.controls)
    best = snapshot.best
    if best is not None and best.number not in chosen:
        chosen.append(best.number)
    if not chosen:
        chosen = [p.number for p in snapshot.points if p.state != "queued"][-3:]
    return chosen[:MAX_CURVES]


def curves(snapshot: StudySnapshot, store: Store, numbers: Sequence[int] | None) -> dict[str, Any]:
    """Per-epoch curves of ``numbers`` (default: ``default_curve_trials``), at most ``MAX_CURVES``."""
    chosen = list(dict.fromkeys(numbers))[:MAX_CURVES] if numbers else default_curve_trials(snapshot)
    epochs = store.epochs_of_trials(snapshot.study.id, chosen)
    by_number = {p.number: p for p in snapshot.points}
    return {"trials": [{"number": n, "state": by_number[n].state if n in by_number else None,
                        "epochs": len(epochs.get(n, []))} for n in chosen],
            "figure": curves_figure(snapshot, {n: epochs[n] for n in chosen if n in epochs})}


def studies_page(store: Store, studies: Sequence[StudyRecord], count: int) -> dict[str, Any]:
    """Rows of the studies page: status, progress, best value and λ, dates, links. A multi-objective study's row
    has ``pareto`` (the front's size so far, counted without loading its trials) and its ``best`` is labelled as
    the primary objective's; a single-objective study's row is as it was."""
    counts = store.counts_of_studies([s.id for s in studies])
    fronts = pareto_so_far(store, studies)
    rows = []
    for study in studies:
        top = store.best_trial(study.id) if counts[study.id].get("complete") else None
        row = {**study_summary(study), "counts": counts[study.id], "finished": _finished(counts[study.id]),
               "running": counts[study.id].get("running", 0),
               "best": None if top is None else {"trial": top.number, "value": top.value,
                                                 "lambdas": all_lambdas(study.spec, top.params)}}
        if study.id in fronts:
            row["pareto"] = fronts[study.id].model_dump()
            if row["best"] is not None:
                row["best"]["primary_objective"] = row["metric"]
        rows.append(row)
    return {"data": rows, "count": count}


def _searched(params: dict[str, Any]) -> dict[str, Any]:
    """The best trial's searched training params (``search.params``) as ``{"params": …}``; ``{}`` without any."""
    trained = searched_params(params)
    return {"params": trained} if trained else {}
