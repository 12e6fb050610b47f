"""``/api/v1/studies/{id}/trials``: the trials of a study, and one trial with its per-epoch curves."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from api.deps import MAX_ID, OwnedStudy, StoreDep
from api.errors import ApiError, error_responses
from api.schemas import TrialDetailPublic, TrialsPublic
from api.views import trial_detail, trial_public
from storage import TrialNotFound

router = APIRouter(prefix="/studies/{study_id}/trials", tags=["trials"])

TrialState = Literal["queued", "running", "complete", "pruned", "failed", "failed_sanity"]


@router.get("", response_model=TrialsPublic, responses=error_responses(401, 403, 404, 422))
def read_trials(
    study: OwnedStudy, store: StoreDep,
    state: Annotated[list[TrialState] | None, Query(description="only trials in these states (repeatable)")] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> TrialsPublic:
    """Trials by number: λ, state, value, sanity-gate outcome, attempt, worker, timings."""
    trials = store.trials(study.id, states=state, offset=offset, limit=limit)
    sanity = store.sanity_of_trials(study.id, [t.number for t in trials])
    counts = store.counts_by_state(study.id)
    count = sum(n for s, n in counts.items() if state is None or s in state)
    return TrialsPublic(data=[trial_public(t, sanity.get(t.number)) for t in trials], count=count)


@router.get("/{number}", response_model=TrialDetailPublic, responses=error_responses(401, 403, 404, 422))
def read_trial(
    study: OwnedStudy, store: StoreDep, number: Annotated[int, Path(ge=0, le=MAX_ID, description="the trial number")],
) -> TrialDetailPublic:
    """One trial with its result and its per-epoch, per-task curves (current attempt)."""
    try:
        trial = store.get_trial(study.id, number)
    except TrialNotFound:
        raise ApiError(404, f"study {study.id} has no trial number {number}", ["path", "number"],
                       "not_found") from None
    return trial_detail(trial, store.sanity(study.id, number), store.epochs(study.id, number))
