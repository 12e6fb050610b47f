"""What the REST service reads and changes beyond the worker's API.

Studies listed per owner, status changes that only happen from an expected status (compare-and-set, so a
pause never overwrites a ``done`` a worker just wrote), the sanity results of a page of trials in one query,
and the store-wide counts behind ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, func, select, update

from storage._core import StoreCore, as_utc, study_record, utcnow
from storage.models import SanityModel, StudyModel, TrialModel
from storage.records import CLAIMABLE_STUDY_STATUSES, STUDY_STATUSES, TRIAL_STATES, SanityRecord, StudyRecord


class ServiceOps(StoreCore):
    # -- studies -------------------------------------------------------------------------------------------
    def studies_of(
        self, owner: str | None, *, every_owner: bool = False, status: str | None = None, offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[StudyRecord], int]:
        """A page of studies (newest first) and how many match in all: those of ``owner``, or of every owner.

        ``owner=None`` (without ``every_owner``) means studies that have no owner.
        """
        where = []
        if not every_owner:
            where.append(StudyModel.owner.is_(None) if owner is None else StudyModel.owner == owner)
        if status is not None:
            if status not in STUDY_STATUSES:
                raise ValueError(f"status must be one of {STUDY_STATUSES}, got {status!r}")
            where.append(StudyModel.status == status)
        page = select(StudyModel).where(*where).order_by(StudyModel.id.desc()).offset(offset).limit(limit)
        count = select(func.count()).select_from(StudyModel).where(*where)
        with self.session("listing studies") as session:
            return [study_record(row) for row in session.scalars(page)], int(session.scalar(count) or 0)

    def transition_study(
        self, study_id: int, to: str, allowed_from: Iterable[str], reason: str = ""
    ) -> StudyRecord | None:
        """Set the study's status to ``to`` (with ``reason``, "" clears it) only if it is now one of
        ``allowed_from``; ``None`` if it was not.

        Raises ``StudyNotFound`` if there is no such study.
        """
        if to not in STUDY_STATUSES:
            raise ValueError(f"status must be one of {STUDY_STATUSES}, got {to!r}")
        with self.session("changing the study status") as session:
            changed = session.execute(
                update(StudyModel)
                .where(StudyModel.id == study_id, StudyModel.status.in_(list(allowed_from)))
                .values(status=to, status_reason=reason, updated_at=self._now())
            )
            row = StudyModel.find_or_raise(session, study_id)
            return study_record(row) if changed.rowcount else None  # type: ignore[attr-defined]

    # -- trials --------------------------------------------------------------------------------------------
    def sanity_of_trials(self, study_id: int, numbers: Sequence[int]) -> dict[int, SanityRecord]:
        """The sanity gate's outcome of each trial's current attempt, by trial number (absent: not run)."""
        if not numbers:
            return {}
        stmt = (
            select(TrialModel.number, SanityModel)
            .join(SanityModel, and_(SanityModel.trial_id == TrialModel.id, SanityModel.attempt == TrialModel.attempt))
            .where(TrialModel.study_id == study_id, TrialModel.number.in_(list(numbers)))
        )
        with self.session("reading sanity checks") as session:
            return {
                number: SanityRecord(number=number, attempt=row.attempt, passed=row.passed, reason=row.reason,
                                     figures=dict(row.figures), created_at=as_utc(row.created_at) or utcnow())
                for number, row in session.execute(stmt)
            }

    # -- store-wide counts (``/metrics``) ------------------------------------------------------------------
    def trial_counts(self) -> dict[str, int]:
        """Trials of every study, by state (every state present, zeros included)."""
        return self._count_by(TrialModel.state, TRIAL_STATES, "counting trials")

    def study_counts(self) -> dict[str, int]:
        """Studies by status (every status present, zeros included)."""
        return self._count_by(StudyModel.status, STUDY_STATUSES, "counting studies")

    def _count_by(self, column: Any, keys: tuple[str, ...], doing: str) -> dict[str, int]:
        counts = dict.fromkeys(keys, 0)
        with self.session(doing) as session:
            for key, n in session.execute(select(column, func.count()).group_by(column)):
                counts[key] = int(n)
        return counts

    def queue_depth(self) -> int:
        """Trials still waiting for a worker in studies that hand out trials: queued ones plus the budget
        (``n_trials``) not yet sampled."""
        claimable = StudyModel.status.in_(CLAIMABLE_STUDY_STATUSES)
        budget = select(func.coalesce(func.sum(StudyModel.n_trials), 0)).where(claimable)
        left_queue = (select(func.count()).select_from(TrialModel).join(StudyModel)
                      .where(claimable, TrialModel.state != "queued"))
        with self.session("measuring the queue") as session:
            return max(0, int(session.scalar(budget) or 0) - int(session.scalar(left_queue) or 0))
