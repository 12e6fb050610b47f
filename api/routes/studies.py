"""``/api/v1/studies``: submit a study, list and read studies, their best λ, pause/resume/cancel, delete."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from api.deps import MAX_ID, CurrentPrincipal, DatasetsDep, OwnedStudy, SettingsDep, StoreDep
from api.errors import ApiError, error_responses
from api.schemas import BestPublic, StudiesPublic, StudyDetailPublic, StudyPublic
from api.submission import submit_study
from api.views import study_detail, study_public
from storage import FINISHED_TRIAL_STATES, Store, StudyRecord
from tuner.analysis.documents import best_document, study_status
from tuner.analysis.pareto import ParetoPublic, pareto_so_far
from tuner.execution.liveness import count_alive
from tuner.spec import StudySpec

router = APIRouter(prefix="/studies", tags=["studies"])

StudyStatus = Literal["queued", "running", "paused", "done", "failed", "cancelled"]
_AUTH = (401, 403, 404)


@router.post("", status_code=201, response_model=StudyPublic, responses=error_responses(401, 403, 409, 413, 422))
def create_study(
    spec: StudySpec, store: StoreDep, datasets: DatasetsDep, settings: SettingsDep, principal: CurrentPrincipal,
) -> StudyPublic:
    """Submit a study (the StudySpec as JSON). It is stored as ``queued``; workers run its sanity gate, then
    its trials (the controls λ = 0 and λ = 1 first). 409 if a study of that name exists, identical or not."""
    document = spec.model_dump(by_alias=True, exclude_unset=True)  # python mode: keeps NaN/inf to refuse
    return _public(store, submit_study(store, datasets, settings, principal, document))


@router.get("", response_model=StudiesPublic, responses=error_responses(401, 422))
def read_studies(
    store: StoreDep, principal: CurrentPrincipal,
    status: Annotated[StudyStatus | None, Query(description="only studies with this status")] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> StudiesPublic:
    """Your studies, newest first (an admin sees every owner's); a multi-objective study with its front's size."""
    page, count = store.studies_of(principal.owner, every_owner=principal.is_admin, status=status, offset=offset,
                                   limit=limit)
    fronts = pareto_so_far(store, page)
    return StudiesPublic(data=[study_public(s, fronts.get(s.id)) for s in page], count=count)


@router.get("/{study_id}", response_model=StudyDetailPublic, responses=error_responses(*_AUTH, 422))
def read_study(study: OwnedStudy, store: StoreDep, settings: SettingsDep) -> StudyDetailPublic:
    """The study: its spec, status, trials per state and best trial so far; a multi-objective study: how many
    trials are on its Pareto front so far (``pareto``), its best being the primary objective's alone; how many
    workers are alive, and a ``warning`` while it waits with none alive to take it."""
    return study_detail(study, study_status(store, study), count_alive(store.workers(), settings.worker_alive_s))


@router.get("/{study_id}/best", response_model=BestPublic | ParetoPublic,
            responses=error_responses(*_AUTH, 409, 422))
def read_best(study: OwnedStudy, store: StoreDep) -> BestPublic | ParetoPublic:
    """The best λ set so far (every aux task's λ, fixed ones included); 409 while no trial has completed.
    A multi-objective study has no single best: it answers with its Pareto front and how to pick a trial."""
    doc = best_document(store, study)
    if doc is None:
        counts = store.counts_by_state(study.id)
        finished = sum(counts[s] for s in FINISHED_TRIAL_STATES)
        why = f" ({study.status_reason})" if study.status_reason else ""
        raise ApiError(409, f"study {study.id} has no completed trial yet ({counts['queued']} queued, "
                            f"{counts['running']} running, {finished} finished without a value; status "
                            f"{study.status}{why}); ask again once a trial has completed", ["path", "study_id"],
                       "no_result_yet")
    if len(study.directions) > 1:
        return ParetoPublic.model_validate(doc)
    return BestPublic.model_validate(doc)


def _public(store: Store, study: StudyRecord) -> StudyPublic:
    """The study as every route answers it (a multi-objective one with its front's size)."""
    return study_public(study, pareto_so_far(store, [study]).get(study.id))


def _transition(store: Store, study: StudyRecord, to: str, allowed_from: tuple[str, ...], verb: str) -> StudyPublic:
    changed = store.transition_study(study.id, to, allowed_from)
    if changed is None:
        now = store.get_study(study.id).status
        raise ApiError(409, f"study {study.id} is {now}; only a {' or '.join(allowed_from)} study can be {verb}",
                       ["path", "study_id"], "invalid_transition")
    return _public(store, changed)


@router.post("/{study_id}/pause", response_model=StudyPublic, responses=error_responses(*_AUTH, 409, 422))
def pause_study(study: OwnedStudy, store: StoreDep) -> StudyPublic:
    """Stop handing out trials; running ones go back to the queue within about a second (their workers check
    the status between epochs); ``resume`` continues."""
    return _transition(store, study, "paused", ("queued", "running"), "paused")


@router.post("/{study_id}/resume", response_model=StudyPublic, responses=error_responses(*_AUTH, 409, 422))
def resume_study(study: OwnedStudy, store: StoreDep) -> StudyPublic:
    """Hand out trials again. A study paused before any trial started goes back to ``queued`` (its sanity
    gate has not run yet), any other to ``running``."""
    counts = store.counts_by_state(study.id)
    started = any(n for state, n in counts.items() if state != "queued")
    return _transition(store, study, "running" if started else "queued", ("paused",), "resumed")


@router.post("/{study_id}/cancel", response_model=StudyPublic, responses=error_responses(*_AUTH, 409, 422))
def cancel_study(study: OwnedStudy, store: StoreDep) -> StudyPublic:
    """End the study for good: no more trials; running ones stop within about a second and end ``failed`` (their
    epochs so far kept); its results stay readable."""
    return _transition(store, study, "cancelled", ("queued", "running", "paused"), "cancelled")


@router.delete("/{study_id}", status_code=204, response_class=Response,
               responses=error_responses(*_AUTH, 409, 422))
def delete_study(study: OwnedStudy, store: StoreDep) -> Response:
    """Delete the study with its trials and metrics. A queued or running study must be paused or cancelled
    first, so an active study is never deleted by accident."""
    if study.status in ("queued", "running"):
        raise ApiError(409, f"study {study.id} is {study.status}; cancel it first (POST /api/v1/studies/"
                            f"{study.id}/cancel), then delete it", ["path", "study_id"], "invalid_transition")
    store.delete_study(study.id)
    return Response(status_code=204)
