"""Confirmation and reference-arm runs (``auxtune_runs``): enqueue, claim exactly once, heartbeat, finish.

A run is one λ set (or learned-weighting arm) trained with one seed after the search. Runs live beside the
trial ledger, not in it: Optuna never sees them, so they cannot steer a sampler or count towards a budget.
A claim is one conditional ``UPDATE … WHERE id = ? AND state = 'queued'`` (the row is won by one claimer on
SQLite and PostgreSQL alike); every later write is conditional on the lease, so a late report from a lease that
expired is refused. A lease that stops heartbeating is requeued by the next claim, up to ``max_attempts``.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from storage._core import StoreCore, as_utc, json_safe, study_record
from storage.errors import LeaseLost
from storage.models import RunModel, StudyModel, WorkerModel
from storage.records import DEFAULT_LEASE_TIMEOUT_S, RUN_STATES, StudyRecord

logger = logging.getLogger(__name__)

#: Runs are handed out only for studies whose search is over (confirmation comes after the search).
RUNNABLE_STUDY_STATUSES: tuple[str, ...] = ("done", "cancelled")
#: How many queued candidates one claim tries before it gives up for this round (others won them).
_CANDIDATES = 8


@dataclass(frozen=True)
class RunPlan:
    """One run to enqueue: ``kind`` is ``baseline``, ``lambda`` or ``weighting``; ``arm`` names its group."""

    kind: str
    arm: str
    params: Mapping[str, Any]
    seed: int
    trial_number: int | None = None


@dataclass(frozen=True)
class RunRecord:
    """One stored run and, once finished, its validation and test metric and its result document."""

    id: int
    study_id: int
    kind: str
    arm: str
    trial_number: int | None
    params: dict[str, Any]
    seed: int
    state: str
    attempt: int
    worker_id: str | None
    started_at: datetime | None
    finished_at: datetime | None
    val_value: float | None
    test_value: float | None
    reason: str
    result: dict[str, Any] | None


@dataclass(frozen=True)
class RunClaim:
    """A lease on one run, held by one worker; writes through the store check ``lease_id``."""

    run_id: int
    study_id: int
    study_name: str
    kind: str
    arm: str
    params: dict[str, Any]
    seed: int
    worker_id: str
    attempt: int
    lease_id: str
    lease_timeout_s: float = DEFAULT_LEASE_TIMEOUT_S


def run_record(row: RunModel) -> RunRecord:
    return RunRecord(
        id=row.id, study_id=row.study_id, kind=row.kind, arm=row.arm, trial_number=row.trial_number,
        params=dict(row.params), seed=row.seed, state=row.state, attempt=row.attempt, worker_id=row.worker_id,
        started_at=as_utc(row.started_at), finished_at=as_utc(row.finished_at), val_value=row.val_value,
        test_value=row.test_value, reason=row.reason, result=dict(row.result) if row.result is not None else None,
    )


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


class RunOps(StoreCore):
    # -- planning ------------------------------------------------------------------------------------------
    def enqueue_runs(self, study_id: int, plans: Sequence[RunPlan]) -> list[RunRecord]:
        """Make sure every planned run exists; returns all runs of the study.

        Idempotent: a run already stored with the same arm, seed and params is kept as it is (finished runs
        are not redone). A stored run of the same arm and seed with *other* params (the best λ changed since)
        is reset to ``queued`` with the new params; a worker still training the old one loses its lease.
        """
        with self._critical_section(study_id):
            with self.session("enqueueing runs") as session:
                StudyModel.find_or_raise(session, study_id)
                existing = {(r.arm, r.seed): r for r in session.scalars(
                    select(RunModel).where(RunModel.study_id == study_id))}
                now = self._now()
                for plan in plans:
                    params = json_safe(dict(plan.params))
                    row = existing.get((plan.arm, plan.seed))
                    if row is not None and row.params == params and row.kind == plan.kind:
                        continue
                    if row is None:
                        row = RunModel(study_id=study_id, arm=plan.arm, seed=plan.seed, created_at=now)
                        session.add(row)
                        existing[(plan.arm, plan.seed)] = row
                    row.kind, row.params, row.trial_number = plan.kind, params, plan.trial_number
                    row.state, row.attempt, row.reason, row.result = "queued", 0, "", None
                    row.worker_id = row.lease_id = None
                    row.heartbeat_at = row.lease_expires_at = row.started_at = row.finished_at = None
                    row.val_value = row.test_value = None
                    row.updated_at = now
        return self.runs(study_id)

    # -- reading -------------------------------------------------------------------------------------------
    def runs(self, study_id: int, arms: Sequence[str] | None = None) -> list[RunRecord]:
        """The study's runs by arm and seed (optionally only these arms)."""
        stmt = select(RunModel).where(RunModel.study_id == study_id).order_by(RunModel.arm, RunModel.seed)
        if arms is not None:
            stmt = stmt.where(RunModel.arm.in_(list(arms)))
        with self.session("listing runs") as session:
            StudyModel.find_or_raise(session, study_id)
            return [run_record(row) for row in session.scalars(stmt)]

    def run_counts(self, study_id: int) -> dict[str, int]:
        """How many of the study's runs are in each state (every state present, zeros included)."""
        counts = dict.fromkeys(RUN_STATES, 0)
        stmt = select(RunModel.state, func.count()).where(RunModel.study_id == study_id).group_by(RunModel.state)
        with self.session("counting runs") as session:
            for state, n in session.execute(stmt):
                counts[state] = int(n)
        return counts

    def finished_studies_without_runs(self, names: Sequence[str] | None = None) -> list[StudyRecord]:
        """Studies whose search is done and that have no run yet (candidates for an automatic confirmation)."""
        has_runs = select(RunModel.id).where(RunModel.study_id == StudyModel.id).exists()
        stmt = select(StudyModel).where(StudyModel.status == "done", ~has_runs).order_by(StudyModel.id)
        if names is not None:
            stmt = stmt.where(StudyModel.name.in_(list(names)))
        with self.session("finding studies to confirm") as session:
            return [study_record(row) for row in session.scalars(stmt)]

    # -- the lease -----------------------------------------------------------------------------------------
    def claim_run(
        self, worker_id: str, *, studies: Sequence[str] | None = None, lease_timeout_s: float = DEFAULT_LEASE_TIMEOUT_S,
        max_attempts: int = 3,
    ) -> RunClaim | None:
        """Lease the oldest queued run of a finished study (optionally only of the named ``studies``).

        First requeues runs whose lease expired (or fails them after ``max_attempts`` claims). Returns ``None``
        when there is nothing to run now.
        """
        self._expire_run_leases(max_attempts)
        stmt = (select(RunModel.id, StudyModel.name).join(StudyModel, StudyModel.id == RunModel.study_id)
                .where(RunModel.state == "queued", StudyModel.status.in_(RUNNABLE_STUDY_STATUSES))
                .order_by(RunModel.id).limit(_CANDIDATES))
        if studies is not None:
            stmt = stmt.where(StudyModel.name.in_(list(studies)))
        with self.session("finding a run") as session:
            candidates = session.execute(stmt).all()
        for run_id, study_name in candidates:
            lease_id = uuid.uuid4().hex
            with self.session("leasing a run") as session:
                now = self._now()
                won = session.execute(
                    update(RunModel).where(RunModel.id == run_id, RunModel.state == "queued")
                    .values(state="running", attempt=RunModel.attempt + 1, worker_id=worker_id, lease_id=lease_id,
                            heartbeat_at=now, started_at=now, lease_expires_at=self._after(lease_timeout_s),
                            updated_at=now)
                )
                if not won.rowcount:  # type: ignore[attr-defined]
                    continue  # another worker took it first
                row = session.get_one(RunModel, run_id)
                return RunClaim(run_id=row.id, study_id=row.study_id, study_name=study_name, kind=row.kind,
                                arm=row.arm, params=dict(row.params), seed=row.seed, worker_id=worker_id,
                                attempt=row.attempt, lease_id=lease_id, lease_timeout_s=lease_timeout_s)
        return None

    def _expire_run_leases(self, max_attempts: int) -> None:
        with self.session("expiring run leases") as session:
            stale = session.execute(
                select(RunModel.id, RunModel.attempt, RunModel.worker_id, RunModel.lease_id)
                .where(RunModel.state == "running", RunModel.lease_expires_at < self._now())
            ).all()
            for run_id, attempt, worker, lease_id in stale:
                self._expire_one(session, run_id, attempt, worker, lease_id, max_attempts)

    def _expire_one(self, session: Session, run_id: int, attempt: int, worker: str | None, lease_id: str | None,
                    max_attempts: int) -> None:
        lost = f"attempt {attempt} lost: the lease of worker {worker} expired without a heartbeat"
        values: dict[str, Any] = {"state": "queued", "reason": lost}
        if attempt >= max_attempts:
            values = {"state": "failed", "reason": f"{lost}; gave up after {max_attempts} attempt(s)",
                      "finished_at": self._now()}
        session.execute(
            update(RunModel).where(RunModel.id == run_id, RunModel.lease_id == lease_id, RunModel.state == "running")
            .values(worker_id=None, lease_id=None, lease_expires_at=None, updated_at=self._now(), **values)
        )
        logger.warning("run %d: %s", run_id, values["reason"])

    def _lease_lost(self, claim: RunClaim, doing: str) -> LeaseLost:
        return LeaseLost(f"run {claim.arm}/seed {claim.seed} of study {claim.study_name!r}: cannot {doing}: the "
                         f"lease of worker {claim.worker_id} (attempt {claim.attempt}) is no longer current "
                         "(it expired and the run was requeued, or the run was re-planned); drop this result")

    def _held(self, claim: RunClaim) -> Any:
        return (RunModel.id == claim.run_id) & (RunModel.lease_id == claim.lease_id) & (RunModel.state == "running")

    def heartbeat_run(self, claim: RunClaim) -> bool:
        """Renew the run's lease (and the worker's heartbeat, so ``/workers`` shows it alive); ``False`` if the
        lease was lost."""
        with self.session("sending a run heartbeat") as session:
            renewed = session.execute(update(RunModel).where(self._held(claim)).values(
                heartbeat_at=self._now(), lease_expires_at=self._after(claim.lease_timeout_s)))
            session.execute(update(WorkerModel).where(WorkerModel.id == claim.worker_id)
                            .values(last_heartbeat_at=self._now()))
            return bool(renewed.rowcount)  # type: ignore[attr-defined]

    def finish_run(
        self, claim: RunClaim, state: str, val_value: float | None = None, test_value: float | None = None,
        result: Mapping[str, Any] | None = None, reason: str = "",
    ) -> None:
        """Record a run's outcome (``complete`` or ``failed``); ``LeaseLost`` (nothing recorded) if the lease
        is no longer current."""
        if state not in ("complete", "failed"):
            raise ValueError(f"a run finishes as 'complete' or 'failed', not {state!r}")
        with self.session("finishing a run") as session:
            now = self._now()
            done = session.execute(update(RunModel).where(self._held(claim)).values(
                state=state, val_value=_finite(val_value), test_value=_finite(test_value),
                result=json_safe(dict(result or {})), finished_at=now, heartbeat_at=now, lease_expires_at=None,
                # Without a reason of its own, a run keeps the note of why an earlier attempt was lost.
                reason=reason or RunModel.reason, updated_at=now))
            if not done.rowcount:  # type: ignore[attr-defined]
                raise self._lease_lost(claim, f"record its {state} result")

    def release_run(self, claim: RunClaim) -> bool:
        """Give a running run back to the queue (shutdown) without counting the attempt; ``False`` if lost."""
        with self.session("releasing a run") as session:
            released = session.execute(update(RunModel).where(self._held(claim)).values(
                state="queued", attempt=RunModel.attempt - 1, worker_id=None, lease_id=None, heartbeat_at=None,
                lease_expires_at=None, started_at=None, updated_at=self._now()))
            return bool(released.rowcount)  # type: ignore[attr-defined]
