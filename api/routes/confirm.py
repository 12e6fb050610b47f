"""``/api/v1/studies/{id}/confirm``, ``/confirmation`` and ``/affinity``: can the study's answer be trusted?

``POST …/confirm`` queues the confirmation runs of a finished study (the best λ set and the baseline over fresh
seeds, plus the spec's learned-weighting arms); workers (the service's embedded ones too) run them once they have
no trial to run. ``GET …/confirmation`` reports them as they finish; ``GET …/affinity`` gives the task affinity
the trials measured, with advice.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from api.dashboard.trust_figures import affinity_figure, confirmation_document
from api.deps import OwnedStudy, StoreDep
from api.errors import ApiError, error_responses
from api.schemas import AffinityPublic, ConfirmationPublic, ConfirmCreate
from storage import StudyRecord
from tuner.analysis.affinity_report import study_affinity
from tuner.analysis.confirm import ConfirmError, confirmation_report, request_confirmation, stored_confirmation

router = APIRouter(prefix="/studies/{study_id}", tags=["confirmation"])

_AUTH = (401, 403, 404)


def _no_result(study: StudyRecord, what: str, how: str) -> ApiError:
    return ApiError(409, f"study {study.id} has no {what} yet; {how}", ["path", "study_id"], "no_result_yet")


@router.post("/confirm", status_code=202, response_model=ConfirmationPublic,
             responses=error_responses(*_AUTH, 409, 422))
def create_confirmation(
    study: OwnedStudy, store: StoreDep, body: Annotated[ConfirmCreate | None, Body()] = None,
) -> ConfirmationPublic:
    """Queue the confirmation of a done (or cancelled) study; workers run it. Asking again is safe: stored
    runs are kept, and more seeds add runs. ``seeds: "auto"`` adds rounds until the CI excludes 0 or
    ``max_seeds``; ``ablate: true`` adds one arm per searched aux task (its λ at 0) and a verdict per task.
    409 while the search runs or when it has no λ set to confirm."""
    body = body or ConfirmCreate()
    try:
        runs = request_confirmation(store, study, body.seeds, body.top_k, ablate=body.ablate,
                                    max_seeds=body.max_seeds, resample_splits=body.resample_splits, test=body.test)
    except ConfirmError as exc:
        if exc.kind == "no_split_seed":
            field = "test" if body.test == "corrected" and not body.resample_splits else "resample_splits"
            raise ApiError(422, str(exc), ["body", field], exc.kind) from None
        raise ApiError(409, f"study {study.id}: {exc}", ["path", "study_id"], exc.kind) from None
    return ConfirmationPublic.model_validate(confirmation_document(confirmation_report(study, runs)))


@router.get("/confirmation", response_model=ConfirmationPublic, responses=error_responses(*_AUTH, 409, 422))
def read_confirmation(study: OwnedStudy, store: StoreDep) -> ConfirmationPublic:
    """Per arm mean ± std of the validation and test metric, each arm against the baseline (and against the
    best λ) paired by seed with its CI and test (``method``), the verdict, the per-task ablation verdicts, the
    sequential looks, and the error analysis (confusion changes)."""
    report = stored_confirmation(store, study)
    if report is None:
        raise _no_result(study, "confirmation", f"queue one with POST /api/v1/studies/{study.id}/confirm")
    return ConfirmationPublic.model_validate(confirmation_document(report))


@router.get("/affinity", response_model=AffinityPublic, responses=error_responses(*_AUTH, 409, 422))
def read_affinity(study: OwnedStudy, store: StoreDep) -> AffinityPublic:
    """Task affinity (TAG lookahead) of each aux task to the main task, per trial and per study, with the
    matrix as a Plotly heatmap and advice: a candidate to drop only when the affinity is clearly negative and
    the λ slice agrees, or when the confirmation's ablation says the task hurts (its verdict decides)."""
    report = study_affinity(store, study)
    if report is None:
        raise _no_result(study, "trial that measured task affinity", "ask again once a trial has finished")
    return AffinityPublic.model_validate({**report, "figure": affinity_figure(report)})
