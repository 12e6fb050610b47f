"""Claiming a trial exactly once.

``claim_trial`` runs inside the study's critical section (see ``storage.locks``), so at most one process at a
time expires leases, picks a queued trial or asks Optuna for a new one: no trial is handed out twice and no
trial number is created twice. Our reads and writes are batched into few transactions, because a worker
claims once per trial and every round trip to PostgreSQL counts.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from storage._core import StoreCore, json_safe, study_record
from storage._ledger import (
    adopted_row,
    clear_worker,
    mark_done_if_finished,
    new_optuna_trial,
    params_of,
    requeue_in_optuna,
    start_in_optuna,
    tell_optuna,
)
from storage.errors import StoreUnavailable
from storage.models import StudyModel, TrialModel, WorkerModel
from storage.records import CLAIMABLE_STUDY_STATUSES, DEFAULT_LEASE_TIMEOUT_S, FINISHED_TRIAL_STATES, Claim, StudyRecord

logger = logging.getLogger(__name__)

#: Builds the λ of a trial by calling ``trial.suggest_*`` and returns the λ set to train with. It is called
#: for every claimed trial: on an enqueued trial Optuna answers with the enqueued values, on a requeued one
#: with the values it already has, on a new one it asks the sampler.
SuggestFn = Callable[[optuna.trial.Trial], Mapping[str, Any]]


@dataclass
class _Plan:
    """What one claim found in the ledger (one transaction) and must still tell Optuna."""

    queued: list[tuple[int, int]] = field(default_factory=list)  # (row id, optuna trial id), by number
    running: int = 0
    next_number: int = 0  # = trials in the study: Optuna numbers them 0, 1, … without gaps
    requeued: list[int] = field(default_factory=list)  # optuna trial ids to put back to WAITING
    to_tell: list[tuple[int, int, str, float | None, str]] = field(default_factory=list)  # (oid, number, state, ...)


class ClaimOps(StoreCore):
    def claim_trial(
        self,
        study_id: int,
        worker_id: str,
        suggest: SuggestFn | None = None,
        *,
        sampler: optuna.samplers.BaseSampler | None = None,
        pruner: optuna.pruners.BasePruner | None = None,
        lease_timeout_s: float = DEFAULT_LEASE_TIMEOUT_S,
        max_attempts: int = 3,
        max_parallel: int | None = None,
    ) -> Claim | None:
        """Lease one trial of the study to ``worker_id``, or return ``None`` if there is nothing to run now.

        The lease taken lasts ``lease_timeout_s`` after the last heartbeat; send ``heartbeat`` well within it.

        In the study's critical section: (1) trials whose lease expired (each holder set its own timeout) go
        back to the queue with ``attempt + 1`` and the same number and λ, or fail once they have had
        ``max_attempts`` attempts; (2) the lowest-numbered queued trial is leased; (3) else, while the study
        has fewer than ``n_trials`` trials, Optuna's ``ask()`` creates one (with ``sampler``/``pruner``) and
        ``suggest`` gives it its λ; (4) else ``None`` (and the study is marked done once every trial finished).
        Without ``suggest`` only queued trials are handed out. Studies that are not queued/running, or that
        already run ``max_parallel`` trials, hand out nothing.

        Its cost does not grow with the number of trials in the study (beyond what Optuna's ``ask`` and the
        sampler cost), except on the repair pass (``_reconcile``), which runs on a process's first claim of
        a study, when there is nothing to hand out, and when Optuna's numbering shows a trial we do not know.
        """
        if lease_timeout_s <= 0:
            raise ValueError(f"lease_timeout_s must be > 0, got {lease_timeout_s}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be ≥ 1, got {max_attempts}")
        try:
            return self._claim_in_section(study_id, worker_id, suggest, sampler, pruner, lease_timeout_s,
                                          max_attempts, max_parallel)
        except StoreUnavailable:
            # The connection dropped mid-claim: Optuna may hold a trial our ledger lacks. This process's next
            # claim runs the repair pass first, so a retry adopts it instead of asking for one more.
            self._reconciled.discard(study_id)
            raise

    def _claim_in_section(
        self, study_id: int, worker_id: str, suggest: SuggestFn | None,
        sampler: optuna.samplers.BaseSampler | None, pruner: optuna.pruners.BasePruner | None,
        lease_timeout_s: float, max_attempts: int, max_parallel: int | None,
    ) -> Claim | None:
        with self._critical_section(study_id):
            study, plan = self._study_and_plan(study_id, max_attempts)
            ostudy = self.optuna_study(study, sampler, pruner)
            repaired = False
            if study.id not in self._reconciled:  # also for a done study: its last finish may not have reached Optuna
                repaired = self._reconcile(study, ostudy, lease_timeout_s)
                self._reconciled.add(study.id)
                if repaired and plan is not None:
                    study, plan = self._study_and_plan(study_id, max_attempts)
            if plan is None:
                return None
            lease = (worker_id, lease_timeout_s)
            claim = self._try_claim(study, ostudy, plan, lease, suggest, max_parallel)
            if claim is None and not repaired and self._reconcile(study, ostudy, lease_timeout_s):
                claim = self._try_claim(study, ostudy, self._plan(study, max_attempts), lease, suggest,
                                        max_parallel)
            if claim is None:
                with self.session("updating the study status") as session:
                    mark_done_if_finished(session, study_id, self._now())
            return claim

    def _try_claim(
        self, study: StudyRecord, ostudy: optuna.Study, plan: _Plan, lease: tuple[str, float],
        suggest: SuggestFn | None, max_parallel: int | None,
    ) -> Claim | None:
        self._tell_optuna_what_changed(ostudy, plan)
        if max_parallel and plan.running >= max_parallel:
            return None
        claim = self._claim_queued(study, ostudy, plan, lease, suggest)
        if claim is None and suggest is not None and plan.next_number < study.n_trials:
            claim = self._claim_new(study, ostudy, plan, lease, suggest)
        return claim

    def _study_and_plan(self, study_id: int, max_attempts: int) -> tuple[StudyRecord, _Plan | None]:
        """One transaction: the study, and if it hands out trials, the plan of the claim (see ``_plan``)."""
        with self.session("preparing a claim") as session:
            study = study_record(StudyModel.find_or_raise(session, study_id))
            if study.status not in CLAIMABLE_STUDY_STATUSES:
                return study, None
            return study, self._fill_plan(session, study, max_attempts)

    def _plan(self, study: StudyRecord, max_attempts: int) -> _Plan:
        with self.session("preparing a claim") as session:
            return self._fill_plan(session, study, max_attempts)

    def _fill_plan(self, session: Session, study: StudyRecord, max_attempts: int) -> _Plan:
        """Expire leases, read the queue, the running count and the next trial number.

        Every query here walks the (study_id, state) or (study_id, number) index: none grows with the study.
        """
        plan = _Plan()
        self._expire_leases(session, study, max_attempts, plan)
        plan.queued = [
            (row_id, oid) for row_id, oid in session.execute(
                select(TrialModel.id, TrialModel.optuna_trial_id)
                .where(TrialModel.study_id == study.id, TrialModel.state == "queued")
                .order_by(TrialModel.number))
        ]
        plan.running = session.scalar(select(func.count()).select_from(TrialModel).where(
            TrialModel.study_id == study.id, TrialModel.state == "running")) or 0
        top = session.scalar(select(func.max(TrialModel.number)).where(TrialModel.study_id == study.id))
        plan.next_number = 0 if top is None else top + 1
        return plan

    def _reconcile(self, study: StudyRecord, ostudy: optuna.Study, grace_s: float, skip: int | None = None) -> bool:
        """Repair what a process that died half-way left behind (see ``storage._ledger``); ``True`` if it did.

        Reads every active trial of the study from Optuna, so it runs only now and then (see ``claim_trial``).
        ``skip`` is an Optuna trial id this claim is about to lease itself.
        """
        with self._optuna_errors("reading active trials"):
            active = self._optuna_storage.get_all_trials(
                study.optuna_study_id, deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
        by_id = {t._trial_id: t for t in active if t._trial_id != skip}
        if not by_id:
            return False
        plan = _Plan()
        with self.session("reconciling trials") as session:
            known = set(session.scalars(
                select(TrialModel.optuna_trial_id).where(TrialModel.optuna_trial_id.in_(by_id))))
            orphans = [frozen for oid, frozen in by_id.items() if oid not in known]
            for frozen in orphans:
                logger.warning("study %r: adopting trial %d, which had no lease row", study.name, frozen.number)
                session.add(adopted_row(study.id, frozen, self._now()))
            untold = session.execute(
                select(TrialModel.optuna_trial_id, TrialModel.number, TrialModel.state, TrialModel.value,
                       TrialModel.reason)
                .where(TrialModel.optuna_trial_id.in_(by_id), TrialModel.state.in_(FINISHED_TRIAL_STATES),
                       TrialModel.finished_at < self._before(grace_s)))
            plan.to_tell = [(oid, number, state, value, reason) for oid, number, state, value, reason in untold]
        for _, number, state, _, _ in plan.to_tell:
            logger.warning("study %r: telling Optuna the %s result of trial %d again", study.name, state, number)
        self._tell_optuna_what_changed(ostudy, plan)
        return bool(orphans or plan.to_tell)

    def _expire_leases(self, session: Session, study: StudyRecord, max_attempts: int, plan: _Plan) -> None:
        stale = session.execute(
            select(TrialModel.id, TrialModel.optuna_trial_id, TrialModel.number, TrialModel.attempt,
                   TrialModel.worker_id, TrialModel.lease_id)
            .where(TrialModel.study_id == study.id, TrialModel.state == "running",
                   TrialModel.lease_expires_at < self._now())
        ).all()
        for row_id, oid, number, attempt, worker, lease_id in stale:
            lost = f"attempt {attempt} lost: the lease of worker {worker} expired without a heartbeat"
            if attempt >= max_attempts:
                reason = f"{lost}; gave up after {max_attempts} attempt(s)"
                values: dict[str, Any] = {"state": "failed", "finished_at": self._now()}
            else:
                reason = lost
                values = {"state": "queued", "attempt": attempt + 1, "worker_id": None, "lease_id": None,
                          "heartbeat_at": None}
            still_leased = session.execute(
                update(TrialModel)
                .where(TrialModel.id == row_id, TrialModel.lease_id == lease_id, TrialModel.state == "running")
                .values(reason=reason, lease_expires_at=None, updated_at=self._now(), **values)
            )
            if not still_leased.rowcount:  # type: ignore[attr-defined]
                continue  # its worker finished it just now
            clear_worker(session, row_id)
            if values["state"] == "failed":
                plan.to_tell.append((oid, number, "failed", None, reason))
                logger.warning("study %r trial %d: %s", study.name, number, reason)
            else:
                plan.requeued.append(oid)
                logger.warning("study %r trial %d: %s; requeued", study.name, number, lost)

    def _tell_optuna_what_changed(self, ostudy: optuna.Study, plan: _Plan) -> None:
        with self._optuna_errors("updating trials in Optuna"):
            for oid in plan.requeued:
                requeue_in_optuna(self._optuna_storage, oid)
            for oid, number, state, value, reason in plan.to_tell:
                tell_optuna(ostudy, oid, number, state, value, reason)

    def _claim_queued(
        self, study: StudyRecord, ostudy: optuna.Study, plan: _Plan, lease: tuple[str, float],
        suggest: SuggestFn | None,
    ) -> Claim | None:
        for row_id, oid in plan.queued:
            with self._optuna_errors("starting a queued trial in Optuna"):
                frozen = start_in_optuna(self._optuna_storage, oid)
            if frozen is None:  # finished in Optuna by someone else: take Optuna's word, look further
                with self._optuna_errors("reading a trial"):
                    done = adopted_row(study.id, self._optuna_storage.get_trial(oid), self._now())
                with self.session("syncing a finished trial") as session:
                    session.execute(update(TrialModel).where(TrialModel.id == row_id).values(
                        state=done.state, value=done.value, reason=done.reason, finished_at=self._now(),
                        updated_at=self._now()))
                continue
            with self._optuna_errors("loading the trial"):
                # Let the study's trial cache see the trial first (Optuna's _CachedStorage only accepts params
                # for trials it has read), as Study.ask() does when it pops a waiting trial.
                ostudy.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                trial = optuna.trial.Trial(ostudy, oid)
            params = self._suggest(study, trial, row_id, suggest, params_of(frozen))
            return self._lease(study, row_id, trial, lease, params)
        return None

    def _claim_new(
        self, study: StudyRecord, ostudy: optuna.Study, plan: _Plan, lease: tuple[str, float], suggest: SuggestFn
    ) -> Claim:
        with self._optuna_errors("asking Optuna for a new trial"):
            trial = new_optuna_trial(ostudy)
        if trial.number != plan.next_number:
            # Optuna has trials our ledger lacks (a claimer died between ask() and _lease): adopt them.
            self._reconcile(study, ostudy, lease[1], skip=trial._trial_id)
        params = self._suggest(study, trial, None, suggest, {})
        return self._lease(study, None, trial, lease, params)

    def _suggest(
        self, study: StudyRecord, trial: optuna.trial.Trial, row_id: int | None, suggest: SuggestFn | None,
        fallback: dict[str, Any],
    ) -> dict[str, Any]:
        if suggest is None:
            return fallback
        try:
            with self._optuna_errors("sampling λ"):  # the sampler reads the study through Optuna's storage
                return json_safe(dict(suggest(trial)))
        except StoreUnavailable:
            raise  # the database, not the λ: the trial stays unleased and the next claim hands it out again
        except Exception as e:
            # Fail the trial rather than hand the same broken λ out forever; the caller sees the error.
            reason = f"suggest failed: {type(e).__name__}: {e}"
            with self.session("failing a trial") as session:
                row = self._row_for(session, study, row_id, trial)
                row.state, row.reason, row.finished_at, row.updated_at = "failed", reason, self._now(), self._now()
            with self._optuna_errors("failing a trial in Optuna"):
                tell_optuna(trial.study, trial._trial_id, trial.number, "failed", None, reason)
            raise

    def _row_for(
        self, session: Session, study: StudyRecord, row_id: int | None, trial: optuna.trial.Trial
    ) -> TrialModel:
        """Our row of a trial; a new trial gets one (unless ``ask()`` popped a trial we already know)."""
        row = session.get(TrialModel, row_id) if row_id is not None else session.scalars(
            select(TrialModel).where(TrialModel.optuna_trial_id == trial._trial_id)).one_or_none()
        if row is None:
            row = TrialModel(study_id=study.id, number=trial.number, optuna_trial_id=trial._trial_id, params={},
                             state="queued", attempt=1, reason="", created_at=self._now())
            session.add(row)
        return row

    def _lease(
        self, study: StudyRecord, row_id: int | None, trial: optuna.trial.Trial, lease: tuple[str, float],
        params: dict[str, Any],
    ) -> Claim:
        """One transaction: record the lease (and the row of a new trial), the worker's trial, the study status."""
        worker_id, lease_timeout_s = lease
        lease_id = uuid.uuid4().hex
        with self.session("leasing a trial") as session:
            now = self._now()
            row = self._row_for(session, study, row_id, trial)
            row.state, row.worker_id, row.lease_id, row.params = "running", worker_id, lease_id, params
            row.heartbeat_at = row.started_at = row.updated_at = now
            row.lease_expires_at = self._after(lease_timeout_s)
            row.finished_at = None
            session.flush()
            row_id, attempt = row.id, row.attempt
            session.execute(update(WorkerModel).where(WorkerModel.id == worker_id).values(
                current_trial_id=row_id, last_heartbeat_at=now))
            if study.status == "queued":
                session.execute(update(StudyModel).where(StudyModel.id == study.id, StudyModel.status == "queued")
                                .values(status="running", updated_at=now))
        return Claim(study_id=study.id, study_name=study.name, number=trial.number, trial_row_id=row_id,
                     optuna_trial_id=trial._trial_id, worker_id=worker_id, attempt=attempt, lease_id=lease_id,
                     params=params, lease_timeout_s=lease_timeout_s, trial=trial)
