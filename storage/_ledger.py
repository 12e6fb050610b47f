"""Keeping auxtune's trial rows and Optuna's trials in step.

Each trial number lives twice: in Optuna's ``trials`` table (what samplers and pruners read) and in
``auxtune_trials`` (the lease). They are written through two connections, so each change is ordered to be
safe if the process dies half-way, and a later claimer repairs what is left (``ClaimOps._reconcile``):

* an Optuna trial with no row of ours (a claimer died between ``ask`` and recording it) is adopted as queued;
* a row of ours that finished while its Optuna trial is still active (a worker died between recording the
  result and telling Optuna) is told to Optuna again.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from storage._core import as_utc, json_safe
from storage.models import StudyModel, TrialModel, WorkerModel
from storage.records import CLAIMABLE_STUDY_STATUSES, TrialRecord

logger = logging.getLogger(__name__)

#: Optuna user attribute that carries the reason a trial failed (optuna-dashboard shows user attributes).
REASON_ATTR = "auxtune_reason"
#: Optuna user attribute that carries the auxtune state when it is finer than Optuna's (``failed_sanity``).
STATE_ATTR = "auxtune_state"

_FROM_OPTUNA = {
    TrialState.WAITING: "queued",
    TrialState.RUNNING: "queued",  # nobody holds a lease on it: hand it out again
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
}
_TO_OPTUNA = {
    "complete": TrialState.COMPLETE,
    "pruned": TrialState.PRUNED,
    "failed": TrialState.FAIL,
    "failed_sanity": TrialState.FAIL,
}


def trial_record(row: TrialModel) -> TrialRecord:
    return TrialRecord(
        study_id=row.study_id,
        number=row.number,
        optuna_trial_id=row.optuna_trial_id,
        params=dict(row.params),
        state=row.state,
        attempt=row.attempt,
        worker_id=row.worker_id,
        heartbeat_at=as_utc(row.heartbeat_at),
        lease_expires_at=as_utc(row.lease_expires_at),
        started_at=as_utc(row.started_at),
        finished_at=as_utc(row.finished_at),
        value=row.value,
        reason=row.reason,
        result=dict(row.result) if row.result is not None else None,
    )


def params_of(frozen: FrozenTrial) -> dict[str, Any]:
    """λ of an Optuna trial: its suggested params, else the params it was enqueued with."""
    fixed = frozen.system_attrs.get("fixed_params") or {}
    return json_safe({**fixed, **frozen.params})


def adopted_row(study_id: int, frozen: FrozenTrial, now: Any) -> TrialModel:
    """A row of ours for an Optuna trial that has none (enqueued controls, or a claimer that died)."""
    state = frozen.user_attrs.get(STATE_ATTR) or _FROM_OPTUNA[frozen.state]
    finished = frozen.state.is_finished()
    return TrialModel(
        study_id=study_id,
        number=frozen.number,
        optuna_trial_id=frozen._trial_id,
        params=params_of(frozen),
        state=state,
        attempt=1,
        value=frozen.values[0] if finished and frozen.values else None,
        reason=str(frozen.user_attrs.get(REASON_ATTR, "")),
        finished_at=now if finished else None,
        created_at=now,
        updated_at=now,
    )


def tell_optuna(
    study: optuna.Study,
    optuna_trial_id: int,
    number: int,
    state: str,
    value: float | Sequence[float] | None,
    reason: str = "",
    expect_running: bool = False,
    live: optuna.trial.Trial | None = None,
) -> None:
    """Finish an Optuna trial as auxtune recorded it; a trial Optuna already finished is left alone.

    Goes through ``Study.tell`` so the sampler's ``after_trial`` hook runs as in plain Optuna. A lease holder
    knows its trial is RUNNING (``expect_running``) and skips the extra read of its state; if it also holds the
    ``live`` trial it asked for, ``tell_live`` does what ``tell`` does without reading the trial back.
    """
    storage = study._storage
    optuna_state = _TO_OPTUNA[state]
    values = value if optuna_state == TrialState.COMPLETE else None
    try:
        if reason:
            storage.set_trial_user_attr(optuna_trial_id, REASON_ATTR, reason)
        if state == "failed_sanity":
            storage.set_trial_user_attr(optuna_trial_id, STATE_ATTR, state)
        if expect_running and live is not None and live._trial_id == optuna_trial_id:
            tell_live(live, optuna_state, values)
            return
        if not expect_running:
            frozen = storage.get_trial(optuna_trial_id)
            if frozen.state.is_finished():
                return
            if frozen.state == TrialState.WAITING:  # requeued meanwhile; tell() accepts RUNNING trials only
                storage.set_trial_state_values(optuna_trial_id, TrialState.RUNNING)
        study.tell(number, values, state=optuna_state, skip_if_finished=True)
    except optuna.exceptions.UpdateFinishedTrialError:
        logger.debug("Optuna trial %s was finished meanwhile", number)
    except ValueError:
        if not expect_running:
            raise
        # Not RUNNING after all (repaired half-way by another process): take the careful path.
        tell_optuna(study, optuna_trial_id, number, state, value, "", expect_running=False)


def tell_live(trial: optuna.trial.Trial, state: TrialState, values: Sequence[float] | float | None) -> None:
    """``Study.tell`` for a RUNNING trial this process asked for and holds, without reading it back.

    ``tell`` reads the trial from the database twice (about a dozen statements on Optuna's schema: one per
    table of params, values, attributes and intermediate values) to check its state and to return it. The lease
    holder already knows the state, and its ``Trial`` object carries the trial as Optuna knows it
    (``_cached_frozen_trial``: params and every reported intermediate value), so this does the rest of
    ``optuna.study._tell._tell_with_warning`` as it is: a pruned trial takes its last intermediate value if
    finite, the sampler's ``after_trial`` runs on the same filtered study, then the state and values are
    written.
    """
    study = trial.study
    study._thread_local.cached_all_trials = None  # as tell() does: that cache is valid within one trial only
    frozen = trial._cached_frozen_trial
    listed = None if values is None else [float(v) for v in (values if isinstance(values, Sequence) else [values])]
    if state == TrialState.PRUNED and listed is None and frozen.last_step is not None:
        last = frozen.intermediate_values[frozen.last_step]
        if math.isfinite(last):
            listed = [float(last)]
    try:
        study.sampler.after_trial(optuna.pruners._filter_study(study, frozen), frozen, state, listed)
    finally:
        study._storage.set_trial_state_values(trial._trial_id, state, listed)


def new_optuna_trial(study: optuna.Study) -> optuna.trial.Trial:
    """``Study.ask()`` for a claimer that has just seen our queue empty: a new RUNNING trial, numbered next.

    ``ask()`` first looks for a WAITING trial to pop, reading every unfinished trial of the study. Every
    WAITING trial we know of is a queued row of ours and was handed out before this is called; one we do not
    know of (a creator died before recording it) gets noticed by its number (the new trial's number is not the
    one our ledger expects) and adopted by ``ClaimOps._reconcile``, as it would be after ``ask()``.
    """
    study._thread_local.cached_all_trials = None  # as ask() does
    storage = study._storage
    trial_id = storage.create_new_trial(study._study_id)
    frozen = _created_trial(storage, trial_id)
    if frozen is None:
        return optuna.trial.Trial(study, trial_id)
    return trial_from_frozen(study, frozen)


def _created_trial(storage: optuna.storages.BaseStorage, trial_id: int) -> FrozenTrial | None:
    """The trial ``create_new_trial`` just made, as Optuna's ``_CachedStorage`` keeps it (a copy); ``None`` if
    the storage is not one, or keeps it otherwise (another Optuna version): then it is read back as usual."""
    try:
        study_id, number = storage._trial_id_to_study_id_and_number[trial_id]  # type: ignore[attr-defined]
        frozen = storage._studies[study_id].trials[number]  # type: ignore[attr-defined]
    except (AttributeError, KeyError, TypeError):
        return None
    return copy.deepcopy(frozen) if isinstance(frozen, FrozenTrial) and frozen._trial_id == trial_id else None


def trial_from_frozen(study: optuna.Study, frozen: FrozenTrial) -> optuna.trial.Trial:
    """``optuna.trial.Trial(study, id)`` for a trial whose ``FrozenTrial`` is already at hand.

    ``Trial.__init__`` reads the trial back (one transaction of six SELECTs: the trial and each table of its
    params, values, attributes and intermediate values) although ``create_new_trial`` has just written it;
    this does the rest of ``__init__`` as it is. ``tests/storage/test_store_contract.py`` checks that the
    result has exactly the attributes of a ``Trial`` built by Optuna, so an Optuna upgrade that changes
    ``__init__`` fails there.
    """
    trial = optuna.trial.Trial.__new__(optuna.trial.Trial)
    trial.study = study
    trial._trial_id = frozen._trial_id
    trial.storage = study._storage
    trial._cached_frozen_trial = frozen
    study.sampler.before_trial(optuna.pruners._filter_study(study, frozen), frozen)
    trial.relative_search_space = None
    trial._relative_params = None
    trial._fixed_params = frozen.system_attrs.get("fixed_params", {})
    return trial


def requeue_in_optuna(storage: optuna.storages.BaseStorage, optuna_trial_id: int) -> None:
    """Put a trial back to WAITING, keeping its params: a later ``suggest_*`` on it returns the same λ."""
    try:
        storage.set_trial_state_values(optuna_trial_id, TrialState.WAITING)
    except optuna.exceptions.UpdateFinishedTrialError:
        logger.debug("Optuna trial id %s already finished; not requeued there", optuna_trial_id)


def start_in_optuna(storage: optuna.storages.BaseStorage, optuna_trial_id: int) -> FrozenTrial | None:
    """Make a queued trial RUNNING in Optuna; ``None`` if Optuna already finished it (then it is not ours)."""
    frozen = storage.get_trial(optuna_trial_id)
    if frozen.state.is_finished():
        return None
    if frozen.state == TrialState.WAITING:
        storage.set_trial_state_values(optuna_trial_id, TrialState.RUNNING)
    return frozen


def clear_worker(session: Session, row_id: int) -> None:
    """The worker that held this trial holds none now."""
    session.execute(update(WorkerModel).where(WorkerModel.current_trial_id == row_id).values(current_trial_id=None))


def mark_done_if_finished(session: Session, study_id: int, now: Any) -> None:
    """Mark a queued/running study done once it has ``n_trials`` trials and none is queued or running.

    Trial numbers have no gaps, so ``max(number) + 1`` is the number of trials: both checks walk an index
    and cost the same at 10 or 10 000 trials.
    """
    active = select(TrialModel.id).where(TrialModel.study_id == study_id,
                                         TrialModel.state.in_(("queued", "running"))).exists()
    trials = select(func.max(TrialModel.number) + 1).where(TrialModel.study_id == study_id).scalar_subquery()
    session.execute(
        update(StudyModel)
        .where(StudyModel.id == study_id, StudyModel.status.in_(CLAIMABLE_STUDY_STATUSES), ~active,
               StudyModel.n_trials <= trials)
        .values(status="done", updated_at=now)
    )
