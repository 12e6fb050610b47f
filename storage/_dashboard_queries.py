"""Reads behind the dashboard: whole-study summaries that stay cheap at 10 000 trials.

The dashboard draws every trial of a study at once (history, λ plots), so it reads the light columns of all
trials in one query (``trial_points``: no result JSON, no epochs) and asks first whether anything changed at
all (``dashboard_version``: three aggregate queries over indexes). Curves are read only for the few trials a
user selects (``epochs_of_trials``), sanity-gate failures are grouped from one query (``sanity_summary``), and
the studies page gets the counts of a whole page of studies in one grouped query (``counts_of_studies``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select

from storage._core import StoreCore, as_utc, utcnow
from storage.models import EpochModel, RunModel, SanityModel, StudyModel, TrialModel
from storage.records import TRIAL_STATES, EpochRecord


@dataclass(frozen=True)
class TrialPoint:
    """The light columns of one trial: what the dashboard's table and plots need (no result, no curves)."""

    number: int
    state: str
    params: dict[str, Any]
    value: float | None
    attempt: int
    worker_id: str | None
    started_at: datetime | None
    finished_at: datetime | None
    reason: str

    @property
    def seconds(self) -> float | None:
        """How long the current attempt ran (``None`` until it finished)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class SanityFailure:
    """One trial whose sanity gate failed (current attempt): the reason in words and the checks that failed."""

    number: int
    reason: str
    checks: tuple[str, ...]


@dataclass(frozen=True)
class SanitySummary:
    """Sanity-gate outcomes of a study's trials (current attempts): counts and every failure."""

    passed: int
    failed: int
    failures: list[SanityFailure] = field(default_factory=list)


class DashboardOps(StoreCore):
    def dashboard_version(self, study_id: int) -> str:
        """A token that changes whenever anything the dashboard shows of the study changes (a trial added,
        claimed, finished or requeued, a sanity result stored, the study's status changed, a confirmation run
        queued, claimed or finished); epochs of running trials and run heartbeats are not part of it (curves are
        read on their own). Raises ``StudyNotFound``."""
        trials = select(func.count(), func.max(TrialModel.updated_at)).where(TrialModel.study_id == study_id)
        sanity = (select(func.count()).select_from(SanityModel)
                  .join(TrialModel, SanityModel.trial_id == TrialModel.id).where(TrialModel.study_id == study_id))
        runs = select(func.count(), func.max(RunModel.updated_at)).where(RunModel.study_id == study_id)
        with self.session("reading the study's version") as session:
            study = StudyModel.find_or_raise(session, study_id)
            n, last = session.execute(trials).one()
            n_sanity = session.scalar(sanity) or 0
            n_runs, last_run = session.execute(runs).one()
            parts = (n, n_sanity, as_utc(last), study.status, as_utc(study.updated_at), n_runs, as_utc(last_run))
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:20]

    def trial_points(self, study_id: int) -> list[TrialPoint]:
        """Every trial of the study by number, light columns only."""
        stmt = (select(TrialModel.number, TrialModel.state, TrialModel.params, TrialModel.value, TrialModel.attempt,
                       TrialModel.worker_id, TrialModel.started_at, TrialModel.finished_at, TrialModel.reason)
                .where(TrialModel.study_id == study_id).order_by(TrialModel.number))
        with self.session("reading the trials") as session:
            StudyModel.find_or_raise(session, study_id)
            return [TrialPoint(number=r.number, state=r.state, params=dict(r.params or {}), value=r.value,
                               attempt=r.attempt, worker_id=r.worker_id, started_at=as_utc(r.started_at),
                               finished_at=as_utc(r.finished_at), reason=r.reason or "")
                    for r in session.execute(stmt)]

    def epochs_of_trials(self, study_id: int, numbers: Sequence[int]) -> dict[int, list[EpochRecord]]:
        """Per-epoch metrics of the current attempt of each trial in ``numbers``, in one query (absent: no
        such trial; empty: no epoch yet)."""
        if not numbers:
            return {}
        stmt = (select(TrialModel.number, EpochModel)
                .join(EpochModel, and_(EpochModel.trial_id == TrialModel.id, EpochModel.attempt == TrialModel.attempt))
                .where(TrialModel.study_id == study_id, TrialModel.number.in_(list(numbers)))
                .order_by(TrialModel.number, EpochModel.epoch))
        known = select(TrialModel.number).where(TrialModel.study_id == study_id,
                                                TrialModel.number.in_(list(numbers)))
        with self.session("reading curves") as session:
            out: dict[int, list[EpochRecord]] = {int(n): [] for n in session.scalars(known)}
            for number, row in session.execute(stmt):
                out[number].append(EpochRecord(number=number, attempt=row.attempt, epoch=row.epoch,
                                               metrics=dict(row.metrics),
                                               created_at=as_utc(row.created_at) or utcnow()))
            return out

    def sanity_summary(self, study_id: int) -> SanitySummary:
        """How many trials passed and failed the sanity gate (current attempts), and each failure."""
        current = and_(SanityModel.trial_id == TrialModel.id, SanityModel.attempt == TrialModel.attempt)
        counts = (select(SanityModel.passed, func.count()).join(TrialModel, current)
                  .where(TrialModel.study_id == study_id).group_by(SanityModel.passed))
        failed = (select(TrialModel.number, SanityModel.reason, SanityModel.figures).join(TrialModel, current)
                  .where(TrialModel.study_id == study_id, SanityModel.passed.is_(False))
                  .order_by(TrialModel.number))
        with self.session("summarising sanity checks") as session:
            by_outcome = {bool(passed): int(n) for passed, n in session.execute(counts)}
            failures = [SanityFailure(number=number, reason=reason or "",
                                      checks=tuple(str(c) for c in (figures or {}).get("failed_checks") or ()))
                        for number, reason, figures in session.execute(failed)]
        return SanitySummary(passed=by_outcome.get(True, 0), failed=by_outcome.get(False, 0), failures=failures)

    def counts_of_studies(self, study_ids: Sequence[int]) -> dict[int, dict[str, int]]:
        """Trials per state of each study in ``study_ids`` (every state present, zeros included), one query."""
        out = {study_id: dict.fromkeys(TRIAL_STATES, 0) for study_id in study_ids}
        if not study_ids:
            return out
        stmt = (select(TrialModel.study_id, TrialModel.state, func.count())
                .where(TrialModel.study_id.in_(list(study_ids))).group_by(TrialModel.study_id, TrialModel.state))
        with self.session("counting trials of studies") as session:
            for study_id, state, n in session.execute(stmt):
                out[study_id][state] = int(n)
        return out
