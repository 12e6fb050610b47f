"""Studies: create or resume by name, read, list, change status, delete."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.study import StudyDirection
from sqlalchemy import delete, func, select

from storage._core import StoreCore, json_safe, spec_hash, study_record
from storage._ledger import adopted_row
from storage.errors import StudyConflict
from storage.locks import CATALOG_KEY
from storage.models import StudyModel
from storage.records import DIRECTIONS, STUDY_STATUSES, StudyRecord

logger = logging.getLogger(__name__)


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two JSON documents differ (``search.n_trials``, ``aux_tasks``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [prefix.rstrip(".") or "(whole spec)"]


class StudyOps(StoreCore):
    def create_or_resume_study(
        self,
        name: str,
        spec: Mapping[str, Any],
        directions: Sequence[str],
        n_trials: int,
        enqueue: Sequence[Mapping[str, float]] = (),
        owner: str | None = None,
    ) -> StudyRecord:
        """Create a study (auxtune row + Optuna study of the same name), or resume it if it exists.

        A new study gets the ``enqueue`` λ sets as its first trials, in order (numbers 0, 1, …; they count
        towards ``n_trials``). An existing study with the same spec (same canonical hash) is returned as it
        is, nothing enqueued again; with a different spec it raises ``StudyConflict``.
        """
        if not name:
            raise ValueError("name must not be empty")
        bad = [d for d in directions if d not in DIRECTIONS]
        if not directions or bad:
            raise ValueError(f"directions must be a non-empty list of {DIRECTIONS}, got {list(directions)}")
        if n_trials < 1:
            raise ValueError(f"n_trials must be ≥ 1, got {n_trials}")
        spec_json = json_safe(dict(spec))
        digest = spec_hash(spec_json)
        with self._critical_section(CATALOG_KEY):
            with self.session("reading the study") as session:
                existing = StudyModel.find_by_name(session, name)
                if existing is not None:
                    self._check_same(existing, spec_json, digest, list(directions))
                    return study_record(existing)
            optuna_id = self._create_optuna_study(name, list(directions), enqueue)
            with self._optuna_errors("reading the enqueued trials"):
                frozen_trials = self._optuna_storage.get_all_trials(optuna_id, deepcopy=False)
            with self.session("creating the study") as session:
                now = self._now()
                row = StudyModel(
                    name=name,
                    spec=spec_json,
                    spec_hash=digest,
                    directions=list(directions),
                    status="queued",
                    optuna_study_id=optuna_id,
                    owner=owner,
                    n_trials=n_trials,
                    created_at=now,
                    updated_at=now,
                )
                session.add(row)
                session.flush()
                session.add_all(adopted_row(row.id, frozen, now) for frozen in frozen_trials)
                session.flush()
                session.refresh(row)
                record = study_record(row)
        logger.info("created study %r (id %d) with %d queued trial(s)", name, record.id, len(frozen_trials))
        return record

    def _check_same(self, row: StudyModel, spec: dict[str, Any], digest: str, directions: list[str]) -> None:
        if row.spec_hash == digest and list(row.directions) == directions:
            return
        fields = _differences(row.spec, spec) or [f"directions ({row.directions} ≠ {directions})"]
        shown = ", ".join(fields[:5]) + (f" and {len(fields) - 5} more" if len(fields) > 5 else "")
        raise StudyConflict(
            f"a study named {row.name!r} already exists with a different definition (differs in: {shown}); "
            f"to resume it, run it again with its original spec; to start a new study, give this spec a new name"
        )

    def _create_optuna_study(self, name: str, directions: list[str], enqueue: Sequence[Mapping[str, float]]) -> int:
        storage = self._optuna_storage
        with self._optuna_errors("creating the Optuna study"):
            try:
                optuna_id = storage.create_new_study([StudyDirection[d.upper()] for d in directions], name)
            except optuna.exceptions.DuplicatedStudyError:
                # Left by a run that died before recording it, or made with Optuna directly: adopt it.
                optuna_id = storage.get_study_id_from_name(name)
                have = [d.name.lower() for d in storage.get_study_directions(optuna_id)]
                if have != directions:
                    raise StudyConflict(
                        f"an Optuna study named {name!r} already exists in this database with directions {have}; "
                        "give this spec a new name"
                    ) from None
                if storage.get_n_trials(optuna_id) > 0:
                    return optuna_id
            if enqueue:
                study = optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler())
                for params in enqueue:
                    study.enqueue_trial(dict(params))
        return optuna_id

    def list_studies(self, status: str | None = None, offset: int = 0, limit: int = 100) -> list[StudyRecord]:
        """Studies, newest first, optionally only those with ``status``."""
        stmt = select(StudyModel).order_by(StudyModel.id.desc()).offset(offset).limit(limit)
        if status is not None:
            stmt = stmt.where(StudyModel.status == _check_status(status))
        with self.session("listing studies") as session:
            return [study_record(row) for row in session.scalars(stmt)]

    def count_studies(self, status: str | None = None) -> int:
        stmt = select(func.count()).select_from(StudyModel)
        if status is not None:
            stmt = stmt.where(StudyModel.status == _check_status(status))
        with self.session("counting studies") as session:
            return int(session.scalar(stmt) or 0)

    def set_study_status(self, study_id: int, status: str) -> StudyRecord:
        """Set the status. Only ``queued``/``running`` studies hand out trials; running trials of a paused or
        cancelled study may still finish."""
        _check_status(status)
        with self.session("changing the study status") as session:
            row = StudyModel.find_or_raise(session, study_id)
            row.status = status
            row.updated_at = self._now()
            session.flush()
            session.refresh(row)
            return study_record(row)

    def delete_study(self, study_id: int) -> None:
        """Delete a study with its trials, metrics and its Optuna study."""
        record = self.get_study(study_id)
        with self._critical_section(study_id):
            with self.session("deleting the study") as session:
                session.execute(delete(StudyModel).where(StudyModel.id == study_id))
            with self._optuna_errors("deleting the Optuna study"):
                self._optuna_storage.delete_study(record.optuna_study_id)
        with self._study_cache_lock:
            for key in [k for k in self._study_cache if k[0] == record.optuna_study_id]:
                del self._study_cache[key]
        self._reconciled.discard(study_id)


def _check_status(status: str) -> str:
    if status not in STUDY_STATUSES:
        raise ValueError(f"status must be one of {STUDY_STATUSES}, got {status!r}")
    return status
