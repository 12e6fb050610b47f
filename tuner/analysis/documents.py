"""A study's state and its answer as documents: what ``GET /studies/{id}`` and ``/best`` send and ``auxtune``
prints from the local store, built here once so that the service and the command line say the same.

Plain JSON-able dicts: the API validates them into its schemas (``api.schemas``), the CLI prints them.
"""

from __future__ import annotations

from typing import Any

from storage import BestTrial, Store, StudyRecord
from tuner.analysis.confirm import confirmation_summary, stored_confirmation
from tuner.analysis.pareto import pareto_public, pareto_so_far
from tuner.spec import SpecError, primary_metric, stored_spec
from tuner.spec.transfer import TRUNK_MODE_PARAM, lambda_params


def best_so_far(study: StudyRecord, top: BestTrial | None) -> dict[str, Any] | None:
    """The best trial so far (trial, value, searched λ); on a multi-objective study it is the best on the primary
    objective alone, labelled so (``primary_objective``). None while no trial has completed."""
    if top is None:
        return None
    doc: dict[str, Any] = {"trial": top.number, "value": top.value, "lambdas": lambda_params(top.params)}
    if len(study.directions) > 1:
        doc["primary_objective"] = primary_metric(study.spec)
    return doc


def study_status(store: Store, study: StudyRecord) -> dict[str, Any]:
    """Where a study stands: trials per state (``counts``), the best trial so far (``best``, see
    :func:`best_so_far`) and, of a multi-objective study, its Pareto front's size so far (``pareto``; else None)."""
    pareto = pareto_so_far(store, [study]).get(study.id)
    return {"counts": store.counts_by_state(study.id), "best": best_so_far(study, store.best_trial(study.id)),
            "pareto": None if pareto is None else pareto.model_dump(mode="json")}


def best_document(store: Store, study: StudyRecord) -> dict[str, Any] | None:
    """The study's answer so far; None while no trial has completed.

    A single objective: the best λ set (every aux task's λ, fixed ones included), its value, trial, metric and
    direction, the trunk mode when the study searches it, once a confirmation was queued its summary and, once its
    best arm has finished runs, the search's estimate (``search_estimate``: ``value``, one seed, the best of many,
    so optimistic) with the best λ set's value over the confirmation's seeds beside it (``confirmed_estimate``,
    mean and 95 % CI). Without them the document is as it always was.
    Several objectives: no single best, the Pareto front (``tuner.analysis.pareto.ParetoPublic``).
    """
    top = store.best_trial(study.id)
    if top is None:
        return None
    if len(study.directions) > 1:
        return pareto_public(store, study).model_dump(mode="json")
    searched = lambda_params(top.params)
    try:
        spec = stored_spec(study.spec)
        lambdas, metric = spec.complete_lambdas(searched), str(spec.objective.metric)
    except SpecError:  # a spec stored by another version: report the λ as they were run
        lambdas, metric = searched, primary_metric(study.spec)
    doc: dict[str, Any] = {"lambdas": lambdas, "value": top.value, "trial": top.number, "metric": metric,
                           "direction": top.direction}
    if TRUNK_MODE_PARAM in top.params:  # a study that searches the trunk mode (tuner.engine.transfer)
        doc["trunk_mode"] = str(top.params[TRUNK_MODE_PARAM])
    confirmation = stored_confirmation(store, study)
    if confirmation is not None:
        doc["confirmation"] = confirmation_summary(confirmation)
        if doc["confirmation"]["estimate"] is not None:  # the winner's curse in the open: beside the search's
            doc["search_estimate"] = {"metric": metric, "value": top.value, "trial": top.number, "seeds": 1}
            doc["confirmed_estimate"] = doc["confirmation"]["estimate"]
    return doc
