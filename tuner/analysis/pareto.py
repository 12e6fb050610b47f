"""A multi-objective study's answer: its Pareto front as the API, the dashboard and ``auxtune best`` give it.

A multi-objective study has no single best trial: the answer is the set of complete trials that no other beats
on every objective, with each objective's value, the trial at each objective's extreme, and how to pick one.
``/pareto`` and ``/best`` (``api.routes.pareto``, ``api.routes.studies``) send ``pareto_public``; the dashboard
builds the same document from its snapshot with ``pareto_document``; ``auxtune best`` prints it.

Where a study is only summarised (``GET /studies[/{id}]``, the dashboard's studies page, ``auxtune status``,
``studies`` and ``run``), a multi-objective study says how many trials its front holds so far (``pareto_so_far``,
counted by ``Store.pareto_sizes`` without loading the trials) rather than its primary objective's best alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from storage import ParetoTrial, Store, StudyRecord
from tuner.spec import SpecError, StudySpec, stored_spec
from tuner.spec.transfer import lambda_params


class ParetoSoFar(BaseModel):
    """A multi-objective study's answer so far, in short: how many trials are on its Pareto front."""

    metrics: list[str] = Field(description="the objectives, the primary first")
    directions: list[str]
    count: int = Field(description="trials on the Pareto front so far (GET …/pareto lists them)")
    complete: int = Field(description="complete trials the front was taken from")


class ParetoTrialPublic(BaseModel):
    trial: int
    lambdas: dict[str, float] = Field(description="every aux task's λ, the fixed ones included")
    values: dict[str, float] = Field(description="the trial's value of each objective, by metric")


class ParetoPublic(BaseModel):
    metrics: list[str] = Field(description="the objectives, the primary first")
    directions: list[str]
    front: list[ParetoTrialPublic] = Field(description="the non-dominated complete trials, by number")
    count: int = Field(description="trials on the front")
    complete: int = Field(description="complete trials the front was taken from")
    best_by_objective: dict[str, int] = Field(description="for each metric, the trial of the front best on it")
    how_to_pick: str


def objective_names(study: StudyRecord) -> list[str]:
    """The study's objectives by metric, the primary first (by position when its spec cannot be read)."""
    return _metrics_and_spec(study)[0]


def _metrics_and_spec(study: StudyRecord) -> tuple[list[str], StudySpec | None]:
    try:
        spec = stored_spec(study.spec)
    except SpecError:  # stored by another version: name the objectives by position
        return [f"objective_{i}" for i in range(len(study.directions))], None
    metrics = spec.objective.metrics()
    if len(metrics) != len(study.directions):
        return [f"objective_{i}" for i in range(len(study.directions))], spec
    return metrics, spec


def _lambdas(spec: StudySpec | None, params: dict[str, Any]) -> dict[str, float]:
    searched = lambda_params(params)
    if spec is None:
        return searched
    try:
        return spec.complete_lambdas(searched)
    except SpecError:
        return searched


def _extreme(front: Sequence[ParetoTrial], i: int, direction: str) -> int:
    """The number of the front's trial best on objective ``i`` (the lowest number on ties)."""
    sign = 1.0 if direction == "maximize" else -1.0
    return min(front, key=lambda t: (-sign * t.values[i], t.number)).number


def pareto_document(study: StudyRecord, front: Sequence[ParetoTrial], complete: int) -> ParetoPublic:
    """The answer for ``study`` whose front (by number) was taken from ``complete`` complete trials."""
    metrics, spec = _metrics_and_spec(study)
    best = {m: _extreme(front, i, d) for i, (m, d) in enumerate(zip(metrics, study.directions, strict=True))
            } if front else {}
    wanted = ", ".join(f"{m} ({d})" for m, d in zip(metrics, study.directions, strict=True))
    if len(metrics) == 1:
        how = f"one objective, {wanted}: every trial listed is best (ties); take the first."
    else:
        how = (f"{len(front)} of {complete} complete trials are Pareto-optimal on {wanted}: each beats every other "
               "trial of the front on at least one objective, so none is best on all. Pick by your priorities: "
               f"e.g. the best {metrics[0]} among the trials whose other objectives you can accept, or the trial "
               "best_by_objective names for the objective you care most about. Its curves: "
               f"GET /api/v1/studies/{study.id}/trials/{{trial}}.")
    return ParetoPublic(
        metrics=metrics, directions=list(study.directions), count=len(front), complete=complete,
        front=[ParetoTrialPublic(trial=t.number, lambdas=_lambdas(spec, t.params),
                                 values=dict(zip(metrics, t.values, strict=True))) for t in front],
        best_by_objective=best, how_to_pick=how)


def pareto_public(store: Store, study: StudyRecord) -> ParetoPublic:
    """The front of ``study`` as the API sends it (empty while no trial has completed)."""
    return pareto_document(study, store.pareto_front(study.id), len(store.objective_values(study.id)))


def pareto_so_far(store: Store, studies: Sequence[StudyRecord]) -> dict[int, ParetoSoFar]:
    """The front's size so far of each multi-objective study of ``studies``, by id (single-objective ones absent);
    no query at all when every study has one objective."""
    multi = {s.id: s for s in studies if len(s.directions) > 1}
    sizes = store.pareto_sizes(list(multi))
    return {i: ParetoSoFar(metrics=objective_names(s), directions=list(s.directions), count=sizes[i].count,
                           complete=sizes[i].complete) for i, s in multi.items() if i in sizes}
