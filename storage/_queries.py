"""Reading the ledger (trials, best trial, epochs, sanity, counts) and the worker registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import aliased

from storage._core import StoreCore, as_utc, utcnow
from storage._ledger import trial_record
from storage.candidates import Candidate, group, ranked
from storage.errors import StoreError, StudyNotFound
from storage.models import EpochModel, RunModel, SanityModel, StudyModel, TrialModel, WorkerModel
from storage.records import (
    TRIAL_STATES,
    BestTrial,
    EpochRecord,
    SanityRecord,
    TrialRecord,
    WorkerRecord,
)


class QueryOps(StoreCore):
    # -- trials --------------------------------------------------------------------------------------------
    def trials(
        self, study_id: int, states: Sequence[str] | None = None, offset: int = 0, limit: int | None = None
    ) -> list[TrialRecord]:
        """Trials of a study by number, optionally only those in ``states``."""
        stmt = select(TrialModel).where(TrialModel.study_id == study_id).order_by(TrialModel.number)
        if states is not None:
            unknown = sorted(set(states) - set(TRIAL_STATES))
            if unknown:
                raise ValueError(f"unknown trial state(s) {unknown}; states are {TRIAL_STATES}")
            stmt = stmt.where(TrialModel.state.in_(list(states)))
        stmt = stmt.offset(offset).limit(limit)
        with self.session("listing trials") as session:
            StudyModel.find_or_raise(session, study_id)
            return [trial_record(row) for row in session.scalars(stmt)]

    def get_trial(self, study_id: int, number: int) -> TrialRecord:
        """One trial by number; ``TrialNotFound`` if the study has no such trial."""
        with self.session("reading a trial") as session:
            return trial_record(TrialModel.find_or_raise(session, study_id, number))

    def counts_by_state(self, study_id: int) -> dict[str, int]:
        """How many trials are in each state (every state present, zeros included)."""
        stmt = (select(TrialModel.state, func.count()).where(TrialModel.study_id == study_id)
                .group_by(TrialModel.state))
        counts = dict.fromkeys(TRIAL_STATES, 0)
        with self.session("counting trials") as session:
            for state, n in session.execute(stmt):
                counts[state] = int(n)
        return counts

    def best_trial(self, study_id: int) -> BestTrial | None:
        """The complete trial with the best value for the study's direction (lowest number on ties).

        On a multi-objective study: the best on the first (primary) objective, for progress lines; such a study's
        answer is its Pareto front (``pareto_front``).
        """
        with self.session("finding the best trial") as session:
            # Only the columns it answers with: progress lines ask often, and a trial's row carries its whole
            # result document (the spec's, the study's).
            directions = session.scalar(select(StudyModel.directions).where(StudyModel.id == study_id))
            if directions is None:
                raise StudyNotFound(f"no study with id {study_id}")
            direction = directions[0]
            row = session.execute(TrialModel.best_first(study_id, direction, TrialModel.number, TrialModel.params,
                                                        TrialModel.value).limit(1)).first()
            if row is None or row.value is None:
                return None
            return BestTrial(study_id=study_id, number=row.number, params=dict(row.params), value=row.value,
                             direction=direction)

    def ranked_candidates(self, study_id: int) -> list[Candidate]:
        """The study's distinct λ sets with a complete trial, best mean first (``storage.candidates``): trials
        with identical params are one candidate. One read of every complete trial's number, params and value."""
        with self.session("ranking the candidates") as session:
            directions = session.scalar(select(StudyModel.directions).where(StudyModel.id == study_id))
            if directions is None:
                raise StudyNotFound(f"no study with id {study_id}")
            rows = session.execute(select(TrialModel.number, TrialModel.params, TrialModel.value).where(
                TrialModel.study_id == study_id, TrialModel.state == "complete")).all()
        return ranked(group((r.number, dict(r.params), r.value, False) for r in rows), directions[0])

    def epochs(self, study_id: int, number: int, attempt: int | None = None) -> list[EpochRecord]:
        """Per-epoch metrics of a trial, of ``attempt`` (default: the trial's current attempt)."""
        with self.session("reading epochs") as session:
            trial = TrialModel.find_or_raise(session, study_id, number)
            rows = session.scalars(
                select(EpochModel)
                .where(EpochModel.trial_id == trial.id, EpochModel.attempt == (attempt or trial.attempt))
                .order_by(EpochModel.epoch)
            )
            return [EpochRecord(number=number, attempt=r.attempt, epoch=r.epoch, metrics=dict(r.metrics),
                                created_at=as_utc(r.created_at) or utcnow()) for r in rows]

    def sanity(self, study_id: int, number: int, attempt: int | None = None) -> SanityRecord | None:
        """The sanity gate's outcome for a trial's ``attempt`` (default: current), ``None`` if not run."""
        with self.session("reading a sanity check") as session:
            trial = TrialModel.find_or_raise(session, study_id, number)
            row = session.scalars(select(SanityModel).where(
                SanityModel.trial_id == trial.id, SanityModel.attempt == (attempt or trial.attempt))).one_or_none()
            if row is None:
                return None
            return SanityRecord(number=number, attempt=row.attempt, passed=row.passed, reason=row.reason,
                                figures=dict(row.figures), created_at=as_utc(row.created_at) or utcnow())

    # -- workers -------------------------------------------------------------------------------------------
    def register_worker(self, worker_id: str, host: str, device: str, pid: int,
                        gpu: dict[str, Any] | None = None) -> WorkerRecord:
        """Register (or re-register, after a restart) a worker process; ``device`` as it trains (``cuda:0``,
        ``cpu``), ``gpu`` the GPU it was given as the host numbers it (``{"index", "name", "memory_bytes"}``)."""
        with self.session("registering a worker") as session:
            now = self._now()
            row = session.get(WorkerModel, worker_id)
            if row is None:
                row = WorkerModel(id=worker_id)
                session.add(row)
            row.host, row.device, row.pid, row.gpu = host, device, pid, gpu
            row.started_at = row.last_heartbeat_at = now
            row.current_trial_id = None
        return self.get_worker(worker_id)

    def worker_heartbeat(self, worker_id: str) -> bool:
        """Mark the worker alive; ``False`` if it is not registered."""
        with self.session("sending a worker heartbeat") as session:
            result = session.execute(
                update(WorkerModel).where(WorkerModel.id == worker_id).values(last_heartbeat_at=self._now()))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def expire_worker_leases(self, worker_id: str) -> int:
        """End the leases a worker holds, now: its supervisor saw it exit (SIGKILL, crash), so the next claim
        requeues its trials and runs (``attempt + 1``, as after a lease timeout) at once instead of a lease timeout
        later. Returns how many leases it held."""
        held = 0
        with self.session("expiring the leases of a worker that exited") as session:
            for model in (TrialModel, RunModel):
                result = session.execute(update(model).where(model.worker_id == worker_id, model.state == "running")
                                         .values(lease_expires_at=self._before(1.0)))
                held += int(result.rowcount)  # type: ignore[attr-defined]
        return held

    def get_worker(self, worker_id: str) -> WorkerRecord:
        found = [w for w in self._workers(WorkerModel.id == worker_id)]
        if not found:
            raise StoreError(f"no worker {worker_id!r} is registered")
        return found[0]

    def workers(self) -> list[WorkerRecord]:
        """Every registered worker, with the trial it holds."""
        return self._workers(None)

    def _workers(self, where: Any) -> list[WorkerRecord]:
        current = aliased(TrialModel)
        stmt = (select(WorkerModel, current.study_id, current.number)
                .outerjoin(current, current.id == WorkerModel.current_trial_id)
                .order_by(WorkerModel.id))
        if where is not None:
            stmt = stmt.where(where)
        with self.session("listing workers") as session:
            return [
                WorkerRecord(id=w.id, host=w.host, device=w.device, pid=w.pid,
                             started_at=as_utc(w.started_at) or utcnow(),
                             last_heartbeat_at=as_utc(w.last_heartbeat_at) or utcnow(),
                             current_study_id=study_id, current_trial_number=number,
                             gpu=dict(w.gpu) if w.gpu is not None else None)
                for w, study_id, number in session.execute(stmt)
            ]
