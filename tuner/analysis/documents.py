"""A study's state and its answer as documents: what ``GET /studies/{id}`` and ``/best`` send and ``auxtune``
prints from the local store, built here once so that the service and the command line say the same.

Plain JSON-able dicts: the API validates them into its schemas (``api.schemas``), the CLI prints them.
"""

from __future__ import annotations

from typing import Any

from storage import BestTrial, Candidate, Store, StudyRecord
from tuner.analysis.confirm import confirmation_summary, stored_confirmation
from tuner.analysis.pareto import pareto_public, pareto_so_far
from tuner.spec import SpecError, primary_metric, stored_spec
from tuner.spec.params import searched_params
from tuner.spec.transfer import TRUNK_MODE_PARAM, lambda_params


def reevaluates(study: StudyRecord) -> bool:
    """Whether the study ranks by the mean over re-evaluations (``search.reevaluate`` in its stored spec)."""
    search = study.spec.get("search") if isinstance(study.spec, dict) else None
    return isinstance(search, dict) and search.get("reevaluate") is not None


def best_of(store: Store, study: StudyRecord) -> tuple[BestTrial | None, Candidate | None]:
    """The study's best trial and, on a study with ``search.reevaluate``, its candidate: the distinct λ set of the
    best **mean** over its evaluations (``storage.candidates``), whose first trial is the best trial returned,
    with the mean as its value."""
    if not reevaluates(study) or len(study.directions) > 1:
        return store.best_trial(study.id), None
    ranked = store.ranked_candidates(study.id)
    if not ranked:
        return None, None
    top = ranked[0]
    return BestTrial(study_id=study.id, number=top.first, params=dict(top.params), value=top.mean,
                     direction=study.directions[0]), top


def evaluations(candidate: Candidate) -> dict[str, Any]:
    """How a re-evaluated answer was measured: the number of evaluations, their trials and values, and the
    standard error of the mean (None with one)."""
    return {"n": candidate.n, "trials": candidate.numbers, "values": candidate.values, "se": candidate.se}


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
    return {"counts": store.counts_by_state(study.id), "best": best_so_far(study, best_of(store, study)[0]),
            "pareto": None if pareto is None else pareto.model_dump(mode="json")}


def best_document(store: Store, study: StudyRecord) -> dict[str, Any] | None:
    """The study's answer so far; None while no trial has completed.

    A single objective: the best λ set (every aux task's λ, fixed ones included), its value, trial, metric and
    direction, the trunk mode when the study searches it, its searched training params (``params``, with
    ``search.params``), once a confirmation was queued its summary and, once its
    best arm has finished runs, the search's estimate (``search_estimate``: ``value``, one seed, the best of many,
    so optimistic) with the best λ set's value over the confirmation's seeds beside it (``confirmed_estimate``,
    mean and 95 % CI). Without them the document is as it always was.
    With ``search.reevaluate`` the best mean over each λ set's evaluations, and ``evaluations`` (``n``, ...).
    Several objectives: no single best, the Pareto front (``tuner.analysis.pareto.ParetoPublic``).
    """
    top, candidate = best_of(store, study)
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
    if candidate is not None:
        doc["evaluations"] = evaluations(candidate)
    if TRUNK_MODE_PARAM in top.params:  # a study that searches the trunk mode (tuner.engine.transfer)
        doc["trunk_mode"] = str(top.params[TRUNK_MODE_PARAM])
    trained = searched_params(top.params)
    if trained:  # a study that searches training params (search.params) beside the λ
        doc["params"] = trained
    confirmation = stored_confirmation(store, study)
    if confirmation is not None:
        doc["confirmation"] = confirmation_summary(confirmation)
        if doc["confirmation"]["estimate"] is not None:  # the winner's curse in the open: beside the search's
            doc["search_estimate"] = {"metric": metric, "value": top.value, "trial": top.number,
                                      "seeds": doc["evaluations"]["n"] if "evaluations" in doc else 1}
            doc["confirmed_estimate"] = doc["confirmation"]["estimate"]
    return doc
